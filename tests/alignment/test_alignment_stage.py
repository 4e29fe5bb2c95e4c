"""Alignment stage: PARS rewards, GRPO pieces, MSRA future items and the two-stage trainer."""

from __future__ import annotations


import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer

from tiny_models import build_tiny
from recbole_reg4rec.alignment import (
    RewardWeights,
    clipped_surrogate,
    group_advantages,
    kl_to_reference,
    multi_step_rewards,
    path_rewards,
    training_future_items,
)
from recbole_reg4rec.alignment.rollout import path_log_probs, sample_paths
from recbole_reg4rec.trainer import REG4RecTrainer
from recbole_reg4rec.alignment.pars import AlignmentSettings, alignment_loss

ALIGN = {"pars_epochs": 1, "pars_group_size": 4, "msra_horizon": 2}


# ---- rewards ------------------------------------------------------------------------------------
def test_rewards_on_hand_made_paths():
    target = torch.tensor([[1, 2, 3]])  # tokens of the target on codebooks 0, 1, 2
    codebooks = torch.tensor([[[2, 0, 1], [0, 1, 2]]])  # two paths, [B=1, G=2, M=3]
    tokens = torch.tensor([[[3, 1, 0], [1, 2, 3]]])  # path 0: right, right, wrong; path 1: all right
    reflect = torch.tensor([[[1.0, -1.0, -1.0], [2.0, 2.0, 2.0]]])
    weights = RewardWeights(hit=1.0, step=0.5, reflect=0.25)
    r = path_rewards(codebooks, tokens, reflect, target, weights)
    assert r["hit"].tolist() == [[0.0, 1.0]]
    assert r["step"][0].tolist() == pytest.approx([2 / 3, 1.0])
    # path 0 truth per step: consistent, consistent, inconsistent; verdicts: yes, no, no -> 2/3 right
    assert r["reflect"][0].tolist() == pytest.approx([2 / 3, 1.0])
    assert r["total"][0].tolist() == pytest.approx([0.5 * 2 / 3 + 0.25 * 2 / 3, 1.0 + 0.5 + 0.25])


def test_msra_adds_discounted_future_rewards_only_where_valid():
    target = torch.tensor([[1, 2, 3]])
    future = torch.tensor([[[1, 2, 0], [9, 9, 9]]])  # [B, H=2, M]
    codebooks = torch.tensor([[[0, 1, 2]]])
    tokens = torch.tensor([[[1, 2, 3]]])
    reflect = torch.full((1, 1, 3), 5.0)
    w = RewardWeights(hit=1.0, step=1.0, reflect=0.0)
    valid = torch.tensor([[True, False]])
    r = multi_step_rewards(codebooks, tokens, reflect, target, future, valid, w, gamma=0.5)
    # next item: hit 1 + step 1 = 2; first future item: hit 0 + step 2/3, discounted by 0.5; second invalid
    assert r["next"].item() == pytest.approx(2.0)
    assert r["total"].item() == pytest.approx(2.0 + 0.5 * (2 / 3))


# ---- GRPO pieces ---------------------------------------------------------------------------------
def test_group_advantages_normalise_and_never_nan():
    adv = group_advantages(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
    assert adv[0].tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)
    assert adv[1].tolist() == [0.0, 0.0]  # zero-variance group: no signal, no NaN
    assert torch.isfinite(adv).all()


def test_clipped_objective_equals_hand_computation():
    logp_old = torch.log(torch.tensor([[[0.5, 0.5], [0.4, 0.2]]]))  # [B=1, G=2, S=2]
    logp_new = torch.log(torch.tensor([[[0.8, 0.5], [0.2, 0.3]]]))
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.tensor([[[True, True], [True, False]]])
    out = clipped_surrogate(logp_new, logp_old, adv, mask, clip_eps=0.2)
    # ratios: 1.6 (A=+1 -> clipped 1.2), 1.0 (A=+1 -> 1.0), 0.5 (A=-1 -> min(-0.5, -0.8) = -0.8); 4th masked
    assert out["objective"].item() == pytest.approx((1.2 + 1.0 - 0.8) / 3, rel=1e-5)
    assert out["clip_fraction"].item() == pytest.approx(2 / 3)
    kl = kl_to_reference(logp_new, logp_new, mask)
    assert kl.item() == pytest.approx(0.0, abs=1e-7)
    assert kl_to_reference(logp_new, logp_old, mask).item() > 0


# ---- MSRA future items -------------------------------------------------------------------------
def test_future_items_never_read_validation_or_test(workdir):
    # 3 users x 6 distinct items in time order: leave-one-out puts item 5 in valid, item 6 in test;
    # a naive "next items of the same user" lookup would credit them to training rows 3 and 4.
    folder = workdir / "data" / "leak"
    folder.mkdir(parents=True)
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(3):
        rows += [f"u{u}\t{10 * u + i}\t{100 * u + i}" for i in range(1, 7)]
    (folder / "leak.inter").write_text("\n".join(rows) + "\n")
    config = Config(model="REG4Rec", dataset="leak", config_dict={
        "data_path": str(workdir / "data"), "load_col": None, "MAX_ITEM_LIST_LENGTH": 10})
    train, valid, test = data_preparation(config, create_dataset(config))
    ds = train._dataset
    future = training_future_items(ds, horizon=3)
    token = ds.field2id_token[ds.iid_field]
    got = {token[int(t)]: [token[int(f)] if f > 0 else None for f in row]
           for t, row in zip(ds.inter_feat[ds.iid_field], future)}
    assert got["2"] == ["3", "4", None] and got["3"] == ["4", None, None] and got["4"] == [None, None, None]
    held_out = {int(i) for d in (valid._dataset, test._dataset) for i in d.inter_feat[d.iid_field]}
    assert held_out and not (held_out & set(future[future > 0].tolist()))


# ---- rollouts and the GRPO step on a tiny model ----------------------------------------------------
@pytest.fixture
def tiny(monkeypatch, workdir):
    return build_tiny(monkeypatch, workdir / "data", extra=ALIGN)


def test_rollouts_are_catalogue_consistent_and_rescored_exactly(tiny):
    model, train, _ = tiny
    model.eval()
    inter = next(iter(train))
    ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
    torch.manual_seed(0)
    ro = sample_paths(model, ctx, group_size=5)
    b = inter[model.ITEM_SEQ].size(0)
    assert ro.tokens.shape == (b, 5, model.n_codebooks)
    assert (ro.codebooks.sort(dim=-1).values == torch.arange(model.n_codebooks)).all()  # each codebook once
    # every sampled path names a real catalogue item
    token_sets = torch.full((b, 5, model.n_codebooks), -1).scatter(2, ro.codebooks, ro.tokens)
    catalogue = {tuple(row) for row in model.codes[1:].tolist()}
    assert all(tuple(p) in catalogue for p in token_sets.view(-1, model.n_codebooks).tolist())
    logp, _ = path_log_probs(model, ctx, ro)  # teacher-forced re-scoring equals the sampling-time log-probs
    assert torch.allclose(logp, ro.logp, atol=1e-5)


def test_alignment_steps_raise_the_mean_reward(tiny):
    model, train, _ = tiny
    model.eval()
    inter = next(iter(train))
    settings = AlignmentSettings(
        group_size=8, clip_eps=0.2, kl_weight=0.0, sft_weight=0.0, reflection_weight=0.0,
        token_temperature=1.0, order_temperature=1.0, reward_weights=RewardWeights(1.0, 0.5, 0.0),
        msra_horizon=0, msra_gamma=1.0,
    )
    import copy

    reference = copy.deepcopy(model)

    def mean_reward(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            return float(alignment_loss(model, reference, inter, settings)["total"].mean())

    before = sum(mean_reward(s) for s in range(3)) / 3
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    torch.manual_seed(123)
    for _ in range(30):
        optimizer.zero_grad()
        alignment_loss(model, reference, inter, settings)["loss"].backward()
        optimizer.step()
    after = sum(mean_reward(s) for s in range(3)) / 3
    assert after > before + 0.1, (before, after)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"pars_group_size": 1}, "pars_group_size = 1"),
        ({"msra_gamma": 0.0}, r"msra_gamma = 0.0 must lie in \(0, 1\]"),
        ({"msra_gamma": 1.5}, "msra_gamma = 1.5"),
        ({"pars_reward_weights": {"hit": -1.0}}, "pars_reward_weights.hit = -1.0 is negative"),
        ({"pars_reward_weights": {"hits": 1.0}}, "unknown component"),
    ],
)
def test_bad_alignment_settings_are_clear_errors(override, match):
    config = {
        "pars_group_size": 8, "pars_clip_eps": 0.2, "pars_kl_weight": 0.05, "pars_sft_weight": 1.0,
        "pars_reflection_weight": 0.5, "pars_token_temperature": 1.0, "pars_order_temperature": 1.0,
        "pars_reward_weights": {"hit": 1.0}, "msra_horizon": 2, "msra_gamma": 0.5,
    }
    config.update(override)
    with pytest.raises(ValueError, match=match):
        AlignmentSettings.from_config(config)


def test_stage2_without_stage1_model_is_refused(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "epochs": 0})
    trainer = REG4RecTrainer(train.config, model)
    with pytest.raises(ValueError, match="needs a stage-1 model"):
        trainer.fit(train, None, verbose=False)


def test_stage2_from_a_stage1_checkpoint_tests_stage1_when_stage2_never_wins(monkeypatch, workdir):
    """stage1_checkpoint: stage 2 starts from that file's weights, and the run's best-model file
    holds them from the start, so the final test works even if no alignment epoch is saved."""
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "epochs": 1, "pars_enabled": False})
    first = REG4RecTrainer(train.config, model)
    first.fit(train, None, verbose=False, saved=True)
    stage1_weights = {k: v.clone() for k, v in model.state_dict().items()}

    # a stage-1 validation score no alignment epoch can beat: stage 2 never saves a model of its own
    checkpoint = torch.load(first.saved_model_file, weights_only=True)
    checkpoint["best_valid_score"] = float("inf")
    torch.save(checkpoint, first.saved_model_file)
    # fixed inference settings: with `auto` ones the bar would be rescored under the chosen settings
    fixed = {"score_mode": "fused", "item_fusion_weight": 2.0, "first_step_weight": 0.0, "reflection_weight": 0.0,
             "reasoning_steps": None}
    model2, train2, test2 = build_tiny(monkeypatch, workdir / "data2", extra={
        **ALIGN, **fixed, "stage1_checkpoint": first.saved_model_file, "pars_learning_rate": 0.01,
        "checkpoint_dir": str(workdir / "saved2")})  # RecBole names files by the second: keep runs apart
    second = REG4RecTrainer(train2.config, model2)
    second.fit(train2, test2, verbose=False, saved=True)
    assert second.stage == 2 and second.saved_model_file != first.saved_model_file
    assert any(not torch.equal(model2.state_dict()[k], v) for k, v in stage1_weights.items())  # stage 2 trained
    saved = torch.load(second.saved_model_file, weights_only=True)
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in stage1_weights.items())
    # the final test reloads the stage-1 weights: the same ranking as stage 1's own model under the
    # same inference settings (the second run chose its 'auto' ones on validation and stored them)
    second_test = second.evaluate(test2, load_best_model=True)
    model.configure_inference(**model2.inference_settings())
    assert second_test["ndcg@5"] == first.evaluate(test2, load_best_model=False)["ndcg@5"]


def test_a_stage2_epoch_that_only_ties_stage1_does_not_replace_it(monkeypatch, workdir):
    """RecBole keeps the later model on a validation tie; stage 2 must beat stage 1 instead. With a zero
    learning rate the alignment epoch leaves the weights as they were, so its validation ties exactly."""
    fixed = {"score_mode": "fused", "item_fusion_weight": 2.0, "first_step_weight": 0.0, "reflection_weight": 0.0,
             "reasoning_steps": None}
    model, train, valid = build_tiny(monkeypatch, workdir / "data", extra={
        **ALIGN, **fixed, "epochs": 1, "pars_learning_rate": 0.0})
    trainer = REG4RecTrainer(train.config, model)
    saved_epochs = []
    save = trainer._save_checkpoint
    monkeypatch.setattr(trainer, "_save_checkpoint", lambda epoch, *a, **k: saved_epochs.append(epoch) or save(epoch, *a, **k))
    best_score, _ = trainer.fit(train, valid, verbose=False, saved=True)
    assert trainer.stage == 2 and trainer.stage1_score is not None
    assert saved_epochs == [0]  # stage 1's epoch 0 only, although the alignment epoch 1 scored the same
    assert best_score == trainer.stage1_score == trainer.best_valid_score
    assert torch.load(trainer.saved_model_file, weights_only=True)["epoch"] == 0


def test_one_fit_runs_both_stages_and_a_killed_stage2_resumes_in_stage2(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "epochs": 1, "pars_epochs": 2})
    config = train.config
    trainer = REG4RecTrainer(config, model)
    seen = []
    original_alignment_epoch = REG4RecTrainer._alignment_epoch

    def crash_on_second_alignment_epoch(self, data, epoch_idx, show_progress):
        seen.append((self.stage, epoch_idx))
        if len(seen) == 2:
            raise KeyboardInterrupt("killed")
        return original_alignment_epoch(self, data, epoch_idx, show_progress)

    monkeypatch.setattr(REG4RecTrainer, "_alignment_epoch", crash_on_second_alignment_epoch)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, None, verbose=False, saved=True)  # no valid data: a checkpoint every epoch
    assert seen == [(2, 1), (2, 2)]  # stage 1 was epoch 0, stage 2 started at epoch 1
    saved = torch.load(trainer.saved_model_file, weights_only=True)
    assert saved["epoch"] == 1 and saved["extra"]["stage"] == 2 and saved["extra"]["stage2_end_epoch"] == 3
    assert "reward_total_mean" in trainer.last_alignment_stats

    # a fresh process-like trainer resumes: no stage-1 epoch, stage 2 continues at epoch 2
    monkeypatch.setattr(REG4RecTrainer, "_alignment_epoch", original_alignment_epoch)
    stage1_epochs = []  # RecBole's epochs without a loss_func (stage 2 passes the PARS loss)
    recbole_train_epoch = Trainer._train_epoch
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, *a, **k: (
        stage1_epochs.append(a[1]) if k.get("loss_func") is None else None) or recbole_train_epoch(self, *a, **k))
    model2, train2, _ = build_tiny(monkeypatch, workdir / "data2", extra={**ALIGN, "epochs": 1, "pars_epochs": 2})
    resumed = REG4RecTrainer(train2.config, model2)
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.stage == 2 and resumed.start_epoch == 2
    reference_weights = saved["extra"]["reference_state_dict"]
    assert all(torch.equal(v, resumed.reference.state_dict()[k]) for k, v in reference_weights.items())
    resumed.fit(train2, None, verbose=False, saved=True)
    assert stage1_epochs == []
    assert torch.load(resumed.saved_model_file, weights_only=True)["epoch"] == 2


def test_both_stages_run_under_mixed_precision(monkeypatch, workdir):
    """enable_amp puts both stages under torch.autocast (bfloat16 on CPU, float16 on CUDA)."""
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "epochs": 1, "enable_amp": True})
    trainer = REG4RecTrainer(train.config, model)
    seen_dtypes = []
    original = type(model).token_logits

    def spy(self, states):
        logits = original(self, states)
        seen_dtypes.append((self.training, logits.dtype))
        return logits

    monkeypatch.setattr(type(model), "token_logits", spy)
    trainer.fit(train, None, verbose=False, saved=False)
    assert trainer.stage == 2 and torch.isfinite(torch.tensor(trainer.last_alignment_stats["reward_total_mean"]))
    assert torch.bfloat16 in {dtype for _, dtype in seen_dtypes}  # autocast was active
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_alignment_epochs_report_every_statistic_to_the_log_and_tensorboard(monkeypatch, workdir):
    """Observability: each reward component (mean, std), KL, clip fraction and reflection accuracy
    per alignment epoch, as tensorboard scalars and in the epoch's log line; validation score too."""
    model, train, held_out = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "epochs": 1, "pars_epochs": 1})
    trainer = REG4RecTrainer(train.config, model)
    scalars, lines = [], []
    monkeypatch.setattr(trainer.tensorboard, "add_scalar", lambda tag, value, step: scalars.append((tag, step)))
    monkeypatch.setattr(trainer.logger, "info", lambda message, *a, **k: lines.append(str(message)))
    trainer.fit(train, held_out, verbose=True, saved=False)
    expected = [f"reward_{c}_{s}" for c in ("hit", "step", "reflect", "total") for s in ("mean", "std")]
    expected += ["kl", "clip_fraction", "reflection_accuracy"]
    assert all((f"Alignment/{name}", 1) in scalars for name in expected)  # epoch 1 = the alignment epoch
    assert ("Vaild_score", 1) in scalars  # RecBole's validation scalar, in stage 2 as well
    alignment_lines = [line for line in lines if "alignment" in line and "reward_hit_mean=" in line]
    assert len(alignment_lines) == 1 and all(f"{name}=" in alignment_lines[0] for name in expected)
    assert set(expected) <= set(trainer.last_alignment_stats)


def test_generator_scope_keeps_the_encoder_and_item_table_of_stage1(monkeypatch, workdir):
    """pars_train_scope: generator — stage 2 moves the decoder and heads only; what the ID head reads
    (encoder, item table) keeps its stage-1 weights, and every parameter is trainable again after fit."""
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={
        **ALIGN, "epochs": 1, "pars_train_scope": "generator", "pars_learning_rate": 0.01})
    trainer = REG4RecTrainer(train.config, model)
    generator = {id(p) for p in model.generator_parameters()}
    names = {name.split(".")[0] for name, p in model.named_parameters() if id(p) in generator}
    assert names == {"decoder", "heads", "codebook_embedding", "bos", "reflection_head"}
    after_stage1 = {}
    original_switch = trainer._switch_to_stage2

    def remember_stage1(first_epoch):
        after_stage1.update({name: p.detach().clone() for name, p in model.named_parameters()})
        original_switch(first_epoch)

    monkeypatch.setattr(trainer, "_switch_to_stage2", remember_stage1)
    trainer.fit(train, None, verbose=False, saved=False)
    assert trainer.stage == 2 and after_stage1
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, after_stage1[name])}
    assert changed and all(name.split(".")[0] in names for name in changed)  # only the generator moved
    assert any(name.startswith("decoder") for name in changed)
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_train_scope_is_refused(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "pars_train_scope": "encoder"})
    with pytest.raises(ValueError, match="pars_train_scope='encoder' is unknown: use one of all, generator"):
        REG4RecTrainer(train.config, model)
