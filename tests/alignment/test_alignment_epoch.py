"""The alignment epoch is RecBole's own ``Trainer._train_epoch`` with the PARS loss as its
``loss_func`` (:mod:`recbole_reg4rec.alignment.epoch`): each batch of sampled paths is visited
``pars_inner_steps`` times, its paths sampled once, and the result equals the PARS loop written out."""

from __future__ import annotations

import copy

import pytest
import torch
from recbole.trainer import Trainer

import recbole_reg4rec.alignment.epoch as epoch_module
from recbole_reg4rec.alignment import batch_loss, sample_batch
from recbole_reg4rec.alignment.epoch import AlignmentEpoch
from recbole_reg4rec.trainer import REG4RecTrainer
from tiny_models import build_tiny

ALIGN = {"epochs": 1, "pars_epochs": 2, "pars_group_size": 4, "msra_horizon": 0, "pars_inner_steps": 3,
         "pars_learning_rate": 0.01, "crss_warmup_epochs": 5}


@pytest.fixture
def tiny(monkeypatch, workdir):
    return build_tiny(monkeypatch, workdir / "data", extra=ALIGN)


def test_stage2_epochs_run_through_recbole_train_epoch_with_the_pars_loss(tiny, monkeypatch):
    model, train, _ = tiny
    trainer = REG4RecTrainer(train.config, model)
    calls, adam_steps = [], []
    recbole_train_epoch = Trainer._train_epoch

    def spy(self, data, epoch_idx, loss_func=None, show_progress=False):
        calls.append((epoch_idx, loss_func, data))
        result = recbole_train_epoch(self, data, epoch_idx, loss_func, show_progress)
        adam_steps.append(int(self.optimizer.state[next(self.model.parameters())]["step"]))
        return result

    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    modes = []
    original_loss = AlignmentEpoch.loss

    def loss(self, interaction):  # the model the PARS loss sees, and how far its epoch counter went
        modes.append((model.training, model._epoch))
        return original_loss(self, interaction)

    monkeypatch.setattr(AlignmentEpoch, "loss", loss)
    trainer.fit(train, None, verbose=False, saved=False)
    assert trainer.stage == 2
    assert [(e, f is None) for e, f, _ in calls] == [(0, True), (1, False), (2, False)]
    for _, loss_func, data in calls[1:]:
        assert isinstance(data, AlignmentEpoch) and loss_func == data.loss  # the epoch's own loss, bound
        assert data.n_updates == len(train) * 3 == len(data)  # three visits per batch
    assert adam_steps[1:] == [len(train) * 3, len(train) * 6]  # one optimizer update per visit (stage 2's optimizer)
    # dropout off while sampling and updating, and an alignment epoch is no supervised epoch: the
    # model's counter (CRSS warm-up) stays where stage 1 left it, although RecBole calls model.train()
    assert modes and set(modes) == {(False, 0)}
    assert model._epoch == 0 and "train" not in model.__dict__  # model.train() is the class's again
    assert "reward_total_mean" in trainer.last_alignment_stats


def test_each_batch_is_visited_inner_steps_times_and_sampled_once(tiny, monkeypatch):
    model, train, _ = tiny
    model.eval()
    trainer = REG4RecTrainer(train.config, model)
    sampled = []
    monkeypatch.setattr(epoch_module, "sample_batch", lambda *a: sampled.append(sample_batch(*a)) or sampled[-1])
    epoch = AlignmentEpoch(model, copy.deepcopy(model), trainer.pars_settings, train)
    visits, rollouts = [], []
    for interaction in epoch:
        visits.append((epoch.visit, interaction))
        epoch.loss(interaction)
        rollouts.append(epoch.rollouts)
    assert len(visits) == len(epoch) == 3 * len(train)
    assert [v for v, _ in visits] == [0, 1, 2] * len(train)
    assert all(visits[i][1] is visits[i - visits[i][0]][1] for i in range(len(visits)))  # the same batch, repeated
    assert len(sampled) == len(train)  # paths sampled on a batch's first visit only, then reused
    assert all(rollouts[i] is sampled[i // 3] for i in range(len(rollouts)))
    stats = epoch.statistics()
    assert epoch.n_paths == sum(int(i[model.ITEM_SEQ].size(0)) for _, i in visits[::3]) * 4  # G = 4 per context
    totals = torch.cat([batch.rewards["total"].flatten() for batch in sampled])  # rewards fixed per batch
    assert stats["reward_total_mean"] == pytest.approx(float(totals.mean()), rel=1e-6)
    assert stats["reward_total_std"] == pytest.approx(float(totals.std(unbiased=False)), rel=1e-4)
    # no optimizer stepped between the visits: each re-scored the behaviour policy (and its reference) itself
    assert epoch.n_updates == 3 * len(train)
    assert stats["ratio_deviation"] < 1e-5 and stats["clip_fraction"] == 0.0 and stats["kl"] == pytest.approx(0, abs=1e-6)


def test_an_alignment_epoch_equals_the_pars_loop_written_out(tiny):
    """Same seed, same weights: RecBole's loop with the PARS loss gives bit for bit the weights of
    the loop PARS describes (sample, then inner_steps clipped updates on those paths), its mean
    loss and its statistics."""
    model, train, _ = tiny
    trainer = REG4RecTrainer(train.config, model)
    trainer._switch_to_stage2(first_epoch=0)
    settings = trainer.pars_settings
    start = copy.deepcopy(model.state_dict())

    loader_state = train.generator.get_state()  # RecBole's loader shuffles with its own generator
    torch.manual_seed(7)
    loss = trainer._alignment_epoch(train, 0, show_progress=False)
    through_recbole = {k: v.clone() for k, v in model.state_dict().items()}
    after_recbole = torch.rand(3)  # the random sequence continues at the same point

    model.load_state_dict(start)
    model.eval()
    optimizer = trainer._build_optimizer(params=model.parameters(), learning_rate=trainer.pars_learning_rate)
    train.generator.set_state(loader_state)
    torch.manual_seed(7)
    losses, kls = [], []
    for interaction in train:
        batch = sample_batch(model, trainer.reference, interaction, settings)
        for _ in range(settings.inner_steps):
            optimizer.zero_grad()
            out = batch_loss(model, batch, settings)
            out["loss"].backward()
            optimizer.step()
            losses.append(float(out["loss"].detach()))
            kls.append(float(out["kl"]))
    assert torch.equal(torch.rand(3), after_recbole)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in through_recbole.items())
    assert any(not torch.equal(start[k], v) for k, v in through_recbole.items())  # it trained
    assert loss == sum(losses) / len(losses)
    assert trainer.last_alignment_stats["kl"] == sum(kls) / len(kls)
