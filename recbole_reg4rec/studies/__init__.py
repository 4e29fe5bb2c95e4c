"""Experiment studies behind the README's findings, one module each, run as ``reg4rec.py`` commands.

* :mod:`.pars_sweep` — alignment-stage variants from one stage-1 model (``pars-sweep``) and their
  across-seed report (``pars-sweep-report``);
* :mod:`.steps_curve` — NDCG@10 against the reasoning steps L from saved checkpoints (``steps-curve``);
* :mod:`.memory` — resident memory after every epoch of a long run (``memory``).

Each builds its runs with the package's one run recipe (:mod:`recbole_reg4rec.run`). Their
committed outputs live under ``results/``.
"""
