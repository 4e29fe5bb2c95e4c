"""Run the tokenizer single-threaded.

Its matrices are small (catalogue x a few hundred): thread start-up and spinning cost more than
they save. Measured on a busy 2-core machine: MPQ training 5-10x slower with torch's 2 threads,
randomized SVD ~10x slower with 2 BLAS threads, never faster.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded():
    """One torch intra-op thread and one BLAS / OpenMP thread inside; restored on exit."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(old)
