"""ZeroMQ PUB semantics with real sockets: a late subscriber gets only what comes after it joins, and a subscriber
that stops reading neither blocks the publisher nor makes its memory grow (the high-water mark drops for it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from emostream.stream.config import ZmqConfig
from emostream.stream.events import MetricsEvent
from emostream.stream.publishers.zeromq import ZmqPublisher
from tests.support.messaging import free_port


def metrics(n: int, pad: int = 0) -> MetricsEvent:
    return MetricsEvent(stream_id="z", emitted_at=float(n), window_s=5.0, audio_s=1.0, wall_s=1.0,
                        real_time_factor=1.0, utterances=n, latency_ms={}, queue_depths={"x" * pad: 0} if pad else {},
                        dropped_partials=0, input_overruns=0)


def test_late_subscriber_misses_earlier_events_and_gets_later_ones(zmq_collector):
    endpoint = f"tcp://127.0.0.1:{free_port()}"

    async def run() -> tuple[list[int], int]:
        pub = ZmqPublisher(ZmqConfig(enabled=True, endpoint=endpoint), "emostream")
        await pub.start()
        for n in range(1, 6):  # nobody listens yet
            await pub.publish(metrics(n))
        sub = await asyncio.to_thread(zmq_collector, endpoint, "emostream/z/")
        n, deadline = 5, time.monotonic() + 15
        while not sub.messages():  # ZeroMQ's slow joiner: the subscription takes a moment to reach the PUB
            assert time.monotonic() < deadline, "the late subscriber never received anything"
            n += 1
            await pub.publish(metrics(n))
            await asyncio.sleep(0.02)
        last = n + 20
        for later in range(n + 1, last + 1):
            await pub.publish(metrics(later))
        got = await asyncio.to_thread(sub.wait_for, 999, 3.0)  # everything that arrives within 3 s
        await pub.close()
        return [m.json()["utterances"] for m in got], last

    seen, last = asyncio.run(run())
    assert min(seen) > 5, "events published before the subscriber joined are not replayed"
    assert seen == list(range(seen[0], last + 1)), "from its first message on, nothing is lost or reordered"


SLOW_SUBSCRIBER = textwrap.dedent("""
    import sys, zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, 10)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()  # does not read the socket until told to
    count = 0
    while s.poll(500):
        s.recv_multipart()
        count += 1
    print(count, flush=True)
""")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_stalled_subscriber_neither_blocks_nor_grows_memory():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    total, pad = 40_000, 4000  # 40k events of ~4 KB: 160 MB if the publisher queued them
    slow = subprocess.Popen([sys.executable, "-c", SLOW_SUBSCRIBER, endpoint], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert slow.stdout is not None and slow.stdout.readline().strip() == "ready"

        async def push() -> tuple[float, float, float]:
            pub = ZmqPublisher(ZmqConfig(enabled=True, endpoint=endpoint, send_hwm=100), "emostream")
            await pub.start()
            await asyncio.sleep(1.0)  # let the subscriber connect and subscribe
            for n in range(200):  # warm up allocations before measuring
                await pub.publish(metrics(n, pad))
            before, start = rss_mib(), time.monotonic()
            for n in range(total):
                await pub.publish(metrics(n, pad))
            took, after = time.monotonic() - start, rss_mib()
            await pub.close()
            return before, after, took

        before, after, took = asyncio.run(push())
        slow.stdin.write("go\n")
        slow.stdin.flush()
        received = int(slow.stdout.readline())
    finally:
        slow.kill()
        slow.wait()
    assert after - before < 48, f"publisher RSS grew {after - before:.0f} MiB while a subscriber stalled"
    assert took < 60, f"publishing {total} events took {took:.1f} s: the publisher waited for the subscriber"
    assert 0 < received < total / 2, f"the stalled subscriber got {received} of {total}: the HWM should drop most"
