"""Side-by-side benchmark of our models and RecBole's built-ins under one protocol.

Entry point: ``python reg4rec.py benchmark`` (see its ``--help``). Modules, one concept each:

* :mod:`.protocol` — the shared evaluation protocol, profiles, ``--models`` / ``--steps`` syntax;
* :mod:`.runner` — one (model, seed) cell in its own process, with its measurements;
* :mod:`.store` — resumable per-cell results (atomic JSON files);
* :mod:`.report` — runs / summary tables, paired differences, plots;
* :mod:`.environment` — hardware, versions, date and command of a run;
* :mod:`.harness` — plans the cells, runs the unfinished ones, writes the reports.
"""

from .protocol import PROTOCOL, BenchmarkError, ModelSpec, Profile, load_profile, parse_models, seeds_for

__all__ = ["PROTOCOL", "BenchmarkError", "ModelSpec", "Profile", "load_profile", "parse_models", "seeds_for"]
