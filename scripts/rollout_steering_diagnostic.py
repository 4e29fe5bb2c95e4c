"""Which rollout steering weight gives GRPO the most signal? Training batches only, no evaluation.

Loads a saved REG4Rec stage-1 model (ml-100k, the sizes of dataset/ml-100k.yaml) and samples G = 8
paths per training context, as stage 2 does, for several ``pars_rollout_steering`` weights w. Per w:

* hit: share of paths that name the context's target item;
* mixed groups: share of contexts whose G paths contain a hit *and* a miss: group-relative
  advantages (GRPO) are zero for the hit reward elsewhere, so this is where the hit reward teaches;
* distinct items per group, and the share of emitted tokens equal to the target's (step reward).

    .venv/bin/python scripts/rollout_steering_diagnostic.py saved/REG4Rec-...pth --weights 0,0.5,1,2,4
"""

from __future__ import annotations

import argparse

import torch

import recbole_reg4rec  # noqa: F401  (registry + compat layer)
from recbole_reg4rec.alignment.rollout import sample_paths
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.run import load_data, make_config, prepare_run, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a REG4Rec stage-1 checkpoint trained on ml-100k")
    parser.add_argument("--weights", default="0,0.5,1,2,4", help="steering weights to compare")
    parser.add_argument("--temperature", type=float, default=0.5, help="token temperature (pars_token_temperature)")
    parser.add_argument("--batches", type=int, default=4, help="training batches sampled per weight")
    parser.add_argument("--group_size", type=int, default=8)
    args = parser.parse_args()

    torch.set_num_threads(1)
    config = make_config("REG4Rec", "ml-100k", None, {"seed": 2020, "state": "WARNING", "show_progress": False,
                                                      "pars_enabled": False})
    seed_everything(config)
    run = prepare_run(config, load_data(config))
    model = run.model
    model.load_state_dict(load_checkpoint(args.checkpoint, map_location="cpu")["state_dict"])
    model.eval()
    batches = [inter for _, inter in zip(range(args.batches), run.train_data)]
    g = args.group_size
    print(f"{'w':>5s} {'hit':>7s} {'mixed groups':>12s} {'items/group':>11s} {'step match':>10s}")
    with torch.no_grad():
        for w in (float(x) for x in args.weights.split(",")):
            torch.manual_seed(0)
            hits = mixed = distinct = step = paths = 0.0
            for inter in batches:
                ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
                prob = model.item_log_prior(ctx).exp()
                ro = sample_paths(model, ctx, g, args.temperature, 1.0, item_prob=prob, steering_weight=w)
                target = model.codes[inter[model.POS_ITEM_ID]].unsqueeze(1)  # [B, 1, M]
                tokens = torch.zeros_like(ro.tokens).scatter_(2, ro.codebooks, ro.tokens)  # [B, G, M] by codebook
                hit = (tokens == target).all(-1)  # [B, G]
                hits += float(hit.sum())
                paths += hit.numel()
                mixed += float((hit.any(1) & ~hit.all(1)).sum())
                distinct += sum(len(set(map(tuple, group.tolist()))) for group in tokens)
                step += float((tokens == target).float().mean(-1).sum())
            groups = paths / g
            print(f"{w:5.1f} {hits / paths:7.4f} {mixed / groups:12.3f} {distinct / groups:11.2f} {step / paths:10.3f}")


if __name__ == "__main__":
    main()
