"""The inference study's complementarity diagnostic: ID head + w x token score on one trained model."""

from __future__ import annotations

import pytest

from tiny_models import build_tiny
from recbole_reg4rec.run import build_trainer
from recbole_reg4rec.studies.inference import complementarity, complementarity_markdown


def test_complementarity_reads_the_same_rankings_as_the_evaluator(monkeypatch, workdir):
    model, train, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0})
    model.eval()
    before = model.inference_settings()
    row = complementarity(model, test, k=5)
    assert model.inference_settings() == before  # the diagnostic leaves the model's settings as they were

    trainer = build_trainer(train.config, model)
    model.configure_inference(score_mode="id")
    by_evaluator = float(trainer.evaluate(test, load_best_model=False)["ndcg@5"])
    assert row["id"] == pytest.approx(by_evaluator, abs=1e-4)  # RecBole rounds to 4 decimals

    # a huge ID weight ranks by the ID head; the token scores alone rank differently on this model
    assert set(row) >= {"id", "tokens", "w=1", "w=64", "only_id", "only_tokens"}
    assert row["w=64"] == pytest.approx(row["id"], abs=0.02)
    assert row["tokens"] != row["id"]
    text = complementarity_markdown([{"model_file": "m.pth", "seed": 2020, "split": "test", **row}])
    assert "| 2020 | test |" in text and f"{row['id']:.4f}" in text


def test_without_an_id_head_the_composed_head_is_the_item_level_ranker(monkeypatch, workdir):
    """The paper-faithful model (no ID head) trains the composed item head by default: the diagnostic
    blends it with the token scores, and its ``id`` column is what score mode ``id`` ranks by."""
    model, train, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 0.0})
    model.eval()
    row = complementarity(model, test, k=5)
    trainer = build_trainer(train.config, model)
    model.configure_inference(score_mode="id")
    assert row["id"] == pytest.approx(float(trainer.evaluate(test, load_best_model=False)["ndcg@5"]), abs=1e-4)


def test_study_summary_lists_the_controls_a_model_has():
    """A model without an ID head has no fused control but a composed-head-alone one: the summary lists what
    was measured, per seed and as mean ± std, and nothing else."""
    from recbole_reg4rec.studies.inference import COMPOSED_ALONE, summary_markdown

    def row(seed, name, ndcg, chosen=False):
        return {"seed": seed, "row": name, "chosen": chosen, "score_mode": "tokens", "item_fusion_weight": 0.0,
                "first_step_weight": 2.0, "reflection_weight": 0.0, "reasoning_steps": 4, "valid_ndcg@10": ndcg,
                "test_ndcg@10": ndcg, "test_recall@10": 2 * ndcg, "first_codebook_differs": 0.5}

    rows = [r for seed in (2020, 2021) for r in (
        row(seed, "trial", 0.05, chosen=True), row(seed, "token scores alone", 0.04), row(seed, COMPOSED_ALONE, 0.06))]
    text = summary_markdown(rows)
    assert "| 2021 | composed head alone |" in text and "| composed head alone | 0.0600 ± 0.0000 |" in text
    assert "previous default" not in text and "ID head alone" not in text
