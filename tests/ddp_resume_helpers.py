"""2-process (gloo, CPU) REG4Rec runs for the DDP resume tests: an uninterrupted one, one whose
ranks SIGKILL themselves at a chosen point, and a resumed one, all through
``recbole_reg4rec.quick_start`` as ``run_recbole.py --nproc=2`` runs them.

Spawned by ``torch.multiprocessing``; children get the parent's ``sys.path``, so this module
(under ``tests/``) is importable there.
"""

from __future__ import annotations

import signal

import torch.multiprocessing as mp

from ddp_worker import free_port


def killing_worker(rank, point, *args):
    """``run_recboles`` on one rank, armed to SIGKILL itself at ``point`` (see ``kill_points``)."""
    import kill_points

    import recbole_reg4rec  # noqa: F401
    from recbole_reg4rec.quick_start import run_recboles

    original_kill = kill_points._kill_self

    def kill_after_every_rank_arrived():
        # rank 0 has written the resume point when every rank reaches the kill point; without
        # this barrier the launcher could stop rank 0 while it writes, as soon as rank 1 is dead
        import torch.distributed as dist

        dist.barrier()
        original_kill()

    kill_points._kill_self = kill_after_every_rank_arrived
    kill_points._arm(point)
    run_recboles(rank, *args)


def killed_run(config_dict, point: str, nproc: int = 2) -> BaseException:
    """Start a DDP REG4Rec run on ``tiny`` whose ranks SIGKILL themselves at ``point``; return the
    launcher's error (every rank died)."""
    config_dict = dict(config_dict, world_size=nproc, nproc=nproc, ip="127.0.0.1", port=free_port(), offset=0)
    kwargs = {"config_dict": config_dict, "queue": None, "saved": True, "resume": None}
    try:
        mp.spawn(killing_worker, args=(point, "REG4Rec", "tiny", None, kwargs), nprocs=nproc, join=True)
    except mp.ProcessExitedException as err:
        assert err.exit_code == -signal.SIGKILL or err.signal_name == "SIGKILL", err
        return err
    raise AssertionError(f"the run finished without reaching kill point {point!r}")


def ddp_run(config_dict, resume=None, nproc: int = 2):
    """``quick_start.run`` with ``nproc`` gloo processes on ``tiny``: rank 0's result."""
    from recbole_reg4rec.quick_start import run

    return run("REG4Rec", "tiny", config_dict=dict(config_dict), nproc=nproc, ip="127.0.0.1", port=free_port(),
               resume=resume)

