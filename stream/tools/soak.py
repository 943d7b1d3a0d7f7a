"""Accelerated soak: many streams of fast replay through the real pipeline while RSS is sampled.

    python -m emostream.stream.tools.soak --streams 6 --minutes 60 [--out docs/bench]

Each stream replays the bundled example dialogue over and over (one long file per stream) as fast as the
machine allows; the run ends when ``--minutes`` of audio have gone through all streams together. It prints RSS
over time, the growth between the first and the last quarter of the run, and writes ``soak_rss.png``.
Flat memory here is what a day-long deployment needs: every buffer in the pipeline is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from emostream.stream.config import Config, override
from emostream.stream.events import Event
from emostream.stream.pipeline import StreamSpec, run_streams
from emostream.stream.services.runtime import load_runtime
from emostream.stream.sources.decode import probe
from emostream.stream.sources.replay import replay

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "call_center.flac"


class Counter:
    """A publisher that only counts: the soak measures the pipeline, not a sink."""

    name = "counter"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def start(self) -> None: ...

    async def publish(self, event: Event) -> None:
        self.counts[event.type] = self.counts.get(event.type, 0) + 1

    async def close(self) -> None: ...


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def long_file(example: Path, seconds: float, folder: Path) -> Path:
    audio, rate = sf.read(example, dtype="int16")
    path = folder / "long.flac"
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(int(np.ceil(seconds * rate / len(audio)))):
            f.write(audio)
    return path


async def soak(streams: int, minutes: float, example: Path, sample_s: float) -> tuple[list[tuple[float, float]], dict]:
    cfg = override(Config(), publish={"stdout": False}, metrics={"interval_s": 0.0})
    with tempfile.TemporaryDirectory() as tmp:
        info = probe(long_file(example, minutes * 60 / streams, Path(tmp)))
        runtime = await asyncio.to_thread(load_runtime, cfg)
        counter = Counter()
        specs = [StreamSpec(f"soak{i}", functools.partial(replay, info, f"soak{i}", cfg.vad.frame_samples, False),
                            str(info.path), live=False) for i in range(streams)]
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()

        async def sample() -> None:
            while True:
                samples.append((time.monotonic() - t0, rss_mib()))
                print(f"  {samples[-1][0]:7.0f} s  RSS {samples[-1][1]:7.1f} MiB  events {counter.counts}", flush=True)
                await asyncio.sleep(sample_s)

        sampler = asyncio.create_task(sample())
        results = await run_streams(specs, cfg, runtime, [counter], asyncio.Event())
        sampler.cancel()
        samples.append((time.monotonic() - t0, rss_mib()))
        await runtime.close()
    failed = {k: repr(v) for k, v in results.items() if isinstance(v, BaseException)}
    return samples, {"events": counter.counts, "failed": failed, "wall_s": samples[-1][0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=6)
    p.add_argument("--minutes", type=float, default=60.0, help="audio minutes through all streams together")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--example", type=Path, default=EXAMPLE)
    p.add_argument("--out", type=Path, default=Path("docs/bench"))
    a = p.parse_args()
    samples, summary = asyncio.run(soak(a.streams, a.minutes, a.example, a.sample_s))
    t, rss = np.array(samples).T
    quarter = max(1, len(rss) // 4)
    first, last = float(np.median(rss[:quarter])), float(np.median(rss[-quarter:]))
    speed = a.minutes * 60 / summary["wall_s"]
    print(f"\n{a.minutes:.0f} min of audio in {a.streams} streams, {summary['wall_s']:.0f} s wall "
          f"({speed:.1f}x real time); events {summary['events']}; failed {summary['failed']}")
    print(f"RSS median first quarter {first:.1f} MiB, last quarter {last:.1f} MiB, growth {last - first:+.1f} MiB, "
          f"peak {rss.max():.1f} MiB")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(t, rss, marker=".")
    ax.set(xlabel="wall time (s)", ylabel="RSS (MiB)", title=f"Soak: {a.minutes:.0f} min of audio, {a.streams} streams")
    ax.set_ylim(0, rss.max() * 1.2)
    fig.tight_layout()
    fig.savefig(a.out / "soak_rss.png", dpi=120)
    print(f"wrote {a.out / 'soak_rss.png'}")


if __name__ == "__main__":
    main()
