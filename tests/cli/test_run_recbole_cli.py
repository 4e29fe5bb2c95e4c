"""run_recbole.py from the shell: a built-in model with config files and overrides; a short error
for an unknown model."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

from entry_points import REPO


def test_cli_runs_builtin_model_with_overrides(fast_sasrec_config):
    config_file = Path("run.yaml")
    import yaml

    config_file.write_text(yaml.safe_dump({k: v for k, v in fast_sasrec_config.items() if k != "epochs"}))
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_recbole.py"), "--model=SASRec", "--dataset=toy",
         f"--config_files={config_file}", "--epochs=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]  # RecBole's known warnings are hidden (compat)
    log = "\n".join(Path(p).read_text() for p in glob.glob("log/SASRec/*.log"))
    assert "epochs = 1" in log.replace("epochs = [1]", "epochs = 1") or "epochs: 1" in log
    assert "test result" in log
    # the output ends with the metrics table and where the best model and the log are
    tail = proc.stdout.strip().splitlines()
    [checkpoint] = [line.split(": ", 1)[1] for line in tail if line.startswith("checkpoint: ")]
    [log_file] = [line.split(": ", 1)[1] for line in tail if line.startswith("log file: ")]
    assert Path(checkpoint).is_file() and checkpoint.endswith(".pth") and Path(log_file).read_text() == log
    assert any("ndcg@10" in line for line in tail)


def test_cli_unknown_model_is_a_short_error(workdir):
    proc = subprocess.run([sys.executable, str(REPO / "run_recbole.py"), "--model=NoSuchModel"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Unknown model 'NoSuchModel'" in proc.stderr and "Traceback" not in proc.stderr
