"""The libraries' thread pools kept quiet (stream/services/thread_pools.py), each case in a fresh interpreter: the
settings only act on libraries as they are loaded, which the test session has long done."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os
import numpy  # its OpenBLAS is loaded before the runtime starts, as in every entry point
from threadpoolctl import threadpool_info
from emostream.stream.services.thread_pools import quiet_thread_pools
quiet_thread_pools()
import ctranslate2, torch  # noqa: E401  the ASR's OpenMP runtime is loaded after it
print(json.dumps({"blas": [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"],
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.get_num_threads()}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: BLAS starts one thread anyway")
def test_blas_one_thread_and_openmp_threads_that_sleep() -> None:
    got = probe()
    assert got["blas"] and all(n == 1 for n in got["blas"]), got  # numpy's OpenBLAS started one per core
    assert got["omp_wait_policy"] == "PASSIVE"
    assert got["torch"] == 1


def test_a_wait_policy_the_user_set_is_kept() -> None:
    assert probe(OMP_WAIT_POLICY="ACTIVE")["omp_wait_policy"] == "ACTIVE"
