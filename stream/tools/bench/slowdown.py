"""A slower machine on demand (issue 16): bench jobs limited to part of this machine's CPU.

Latency tricks that only fit the hangover on a fast machine fail on a slower one, so ``emo-bench`` can run every
job a second time under a limit and report both side by side. Two ways, chosen by flag:

- ``--cpu-quota F``: a CPU cgroup whose quota is F of all cores' time (cgroup v2 ``cpu.max``, or cgroup v1
  ``cpu.cfs_quota_us`` where only that hierarchy has the cpu controller). The job still sees every core, as a
  container with a CPU limit does; it needs a writable cgroup file system (root, or a delegated subtree).
- ``--cpus N``: the job's threads pinned to the first N cores (``sched_setaffinity``, as ``taskset`` does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000  # the scheduler period of the quota: 100 ms, the kernel's default


class SlowdownUnavailable(Exception):
    """The chosen limit cannot be applied here; the message says why and what to try instead."""


@dataclass(frozen=True)
class Slowdown:
    quota: float | None = None  # fraction of all cores' time
    cpus: int | None = None  # first N cores

    @property
    def label(self) -> str:
        return f"cpu-quota {self.quota:g}" if self.quota is not None else f"cpus {self.cpus}"

    @property
    def fraction(self) -> float:
        """The share of this machine's CPU the job gets."""
        return self.quota if self.quota is not None else (self.cpus or 0) / (os.cpu_count() or 1)


def _cpu_cgroup() -> tuple[Path, str]:
    """This process's CPU cgroup directory and its hierarchy ("v2" or "v1"), from /proc/self/cgroup and the
    mounts; the v2 directory only when its cpu controller is enabled there."""
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    groups = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
    for _, controllers, path in groups:
        if controllers == "":  # the v2 (unified) hierarchy
            for m in mounts:
                here = Path(m[1]) / path.lstrip("/")
                if m[2] == "cgroup2" and "cpu" in _words(here / "cgroup.controllers"):
                    return here, "v2"
    for _, controllers, path in groups:
        if "cpu" in controllers.split(","):
            for m in mounts:
                if m[2] == "cgroup" and "cpu" in m[3].split(","):
                    return Path(m[1]) / path.lstrip("/"), "v1"
    raise SlowdownUnavailable("no cgroup with the cpu controller is mounted here (neither cgroup v2 cpu.max nor "
                              "v1 cpu.cfs_quota_us); use --cpus N to pin the jobs to N cores instead")


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


@contextmanager
def _quota_group(quota: float) -> Iterator[Path]:
    """A child cgroup with the quota, removed afterwards (a process that ran in it must have exited)."""
    parent, version = _cpu_cgroup()
    child = parent / f"emo-bench-{os.getpid()}"
    quota_us = max(1000, round(quota * (os.cpu_count() or 1) * PERIOD_US))
    try:
        child.mkdir()
        if version == "v2":
            (child / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
        else:
            (child / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (child / "cpu.cfs_quota_us").write_text(str(quota_us))
    except OSError as e:
        if child.exists():
            child.rmdir()
        raise SlowdownUnavailable(
            f"cannot create a CPU-limited cgroup under {parent} ({e.strerror}): --cpu-quota needs a writable cgroup "
            f"file system (root, or a delegated subtree with the cpu controller); use --cpus N instead") from None
    try:
        yield child
    finally:
        child.rmdir()


@contextmanager
def limited(slowdown: Slowdown | None) -> Iterator[Callable[[], None] | None]:
    """A ``preexec_fn`` that puts a subprocess under ``slowdown`` (None: no limit), valid inside the block."""
    if slowdown is None:
        yield None
    elif slowdown.cpus is not None:
        cores = sorted(os.sched_getaffinity(0))
        if slowdown.cpus > len(cores):
            raise SlowdownUnavailable(f"--cpus {slowdown.cpus}: this process may only use {len(cores)} cores")
        keep = set(cores[: slowdown.cpus])
        yield lambda: os.sched_setaffinity(0, keep)
    else:
        assert slowdown.quota is not None
        with _quota_group(slowdown.quota) as group:
            yield lambda: (group / "cgroup.procs").write_text(str(os.getpid()))


def check(slowdown: Slowdown) -> None:
    """Fails now, with the reason, rather than after the full-speed half of a long run."""
    if slowdown.quota is not None and not 0 < slowdown.quota <= 1:
        raise SlowdownUnavailable(f"--cpu-quota takes a fraction of the machine in (0, 1], got {slowdown.quota:g}")
    if slowdown.cpus is not None and slowdown.cpus < 1:
        raise SlowdownUnavailable(f"--cpus takes a number of cores ≥ 1, got {slowdown.cpus}")
    with limited(slowdown):
        pass
