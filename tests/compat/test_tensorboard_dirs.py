"""RecBole's TensorBoard writer keeps writing into its own run's folder after a change of directory."""

from __future__ import annotations

import logging
import os

import recbole_reg4rec  # noqa: F401  (applies the compat patches)


def test_writer_folder_is_fixed_when_made(tmp_path, monkeypatch):
    import recbole.trainer.trainer as trainer

    first, elsewhere = tmp_path / "run", tmp_path / "next"
    first.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(first)
    logger = logging.getLogger("tensorboard-dirs-test")
    writer = trainer.get_tensorboard(logger)  # the name RecBole's Trainer calls
    try:
        assert os.path.isabs(writer.log_dir)
        assert os.path.dirname(writer.log_dir) == str(first / "log_tensorboard")
        monkeypatch.chdir(elsewhere)  # e.g. the next trial or test
        writer.add_scalar("loss", 1.0, 0)
        writer.flush()
    finally:
        writer.close()
    assert any(p.name.startswith("events.out") for p in (first / "log_tensorboard").rglob("*"))
    assert not (elsewhere / "log_tensorboard").exists()
