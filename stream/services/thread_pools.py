"""The libraries' own thread pools, kept from spinning on cores the streams need.

A stream's work already runs on threads of its own (its stages, CTranslate2's decode threads), so the pools that
numerical libraries start beside them only wait on each other, and several of them wait by spinning. Measured on
the 2-core machine (docs/benchmarks.md, "Spinning thread pools"): a fast replay of the example cost 3.0 s of CPU on
two cores against 2.0 s on one. A fifth of it was numpy's OpenBLAS threads spinning for work
(``blas_thread_server``) beside matrix products of microseconds, and more was CTranslate2's OpenMP threads
spinning between the parallel regions of a decode. Under a CPU quota (a container's limit) that spinning is charged
as work, and half of the machine replayed at 10.6x real time instead of 14x.
"""

from __future__ import annotations

import logging
import os
import sys

import torch
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)


def quiet_thread_pools() -> None:
    """One torch thread, one BLAS thread for numpy (and scipy), and OpenMP threads that sleep when idle.

    Call before the ASR model loads: OpenMP reads ``OMP_WAIT_POLICY`` once, when CTranslate2's runtime is
    loaded. A value the user set is kept."""
    # torch's intra-op threads on top of the streams' only contend for the same cores (speaker embeddings were
    # 40x slower with them on 2 cores).
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")
    if "ctranslate2" in sys.modules:
        log.debug("CTranslate2 was loaded before its OpenMP wait policy could be set; its threads may spin")
    else:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
