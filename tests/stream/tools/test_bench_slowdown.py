"""emo-bench's slowed-machine mode: a job under ``--cpu-quota`` really gets that share of the CPU, one under
``--cpus`` really runs on that many cores, and a limit this machine cannot apply is refused with the reason."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emostream.stream.tools.bench.slowdown import Slowdown, SlowdownUnavailable, check, limited

# Two busy processes for 1.5 s; prints the CPU seconds they used.
BURN = """
import multiprocessing, resource, time
def spin():
    t = time.monotonic()
    while time.monotonic() - t < 1.5:
        pass
ps = [multiprocessing.Process(target=spin) for _ in range(2)]
[p.start() for p in ps]
[p.join() for p in ps]
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)
"""


def test_cpu_quota_holds_a_busy_job_to_its_share():
    slowdown = Slowdown(quota=0.25)
    try:
        check(slowdown)
    except SlowdownUnavailable as e:
        pytest.skip(f"no writable CPU cgroup here: {e}")
    with limited(slowdown) as preexec:
        out = subprocess.run([sys.executable, "-c", BURN], capture_output=True, text=True, preexec_fn=preexec,
                             check=True)
    cores = os.cpu_count() or 1
    # 1.5 s at a quarter of the machine; unlimited, two spinning processes would use up to 3 CPU seconds.
    assert float(out.stdout) <= 1.5 * 0.25 * cores * 1.25


def test_cpus_pins_a_job_to_that_many_cores():
    with limited(Slowdown(cpus=1)) as preexec:
        out = subprocess.run([sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"],
                             capture_output=True, text=True, preexec_fn=preexec, check=True)
    assert out.stdout.strip() == "1"


def test_a_limit_that_cannot_be_applied_is_refused_with_the_reason():
    with pytest.raises(SlowdownUnavailable, match="may only use"):
        check(Slowdown(cpus=len(os.sched_getaffinity(0)) + 1))
    with pytest.raises(SlowdownUnavailable, match=r"fraction of the machine in \(0, 1\]"):
        check(Slowdown(quota=1.5))
    p = subprocess.run([sys.executable, "-m", "emostream.stream.tools.bench.cli", "--quick", "--cpus", "999"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "emo-bench: --cpus 999: this process may only use" in p.stderr
