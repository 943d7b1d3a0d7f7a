"""Faults of ``emo-stream serve --cluster`` on a real two-node Ray cluster (slow: run with ``pytest -m slow``).

A model replica killed mid-call is restarted by Ray Serve and every final event still arrives (its requests are
sent again); a worker node lost mid-call ends the calls it served with a ``call_error`` event and a log line, the
calls on the other node finish whole, and a new call goes to the surviving node.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from ray.util.state import list_actors

from emostream.stream.events import validator
from tests.stream.cli_run import match
from tests.stream.cluster.ray_cluster import RayCluster
from tests.stream.server.serve_proc import ServeProcess, finish_client, start_client
from tests.support import dialogues as dlg

pytestmark = pytest.mark.slow
TOKEN = "tok-faults-1"
SECONDS = 20.0
CONFIG = """
server: {max_calls: 2, idle_timeout_s: 120}
metrics: {interval_s: 0}
cluster:
  proxy_location: HeadOnly
  ingress: {min_replicas: 2, max_replicas: 2, num_cpus: 0.5, max_replicas_per_node: 1}
"""


@pytest.fixture
def dialogue() -> dlg.Dialogue:
    if not dlg.EXAMPLE_JSON.exists():
        pytest.skip(f"{dlg.EXAMPLE_JSON} is missing (run examples/build_example.py)")
    return dlg.example_dialogue()


@pytest.fixture
def cluster():
    c = RayCluster(nodes=2, cpus_per_node=4)  # room on either node for every deployment Ray Serve re-places
    yield c
    c.shutdown()


def native_call(server: ServeProcess, dialogue: dlg.Dialogue, stream_id: str, seconds: float = SECONDS):
    return start_client("native", server.url("/v1/stream"), "--token", TOKEN, "--audio", str(dialogue.path),
                        "--seconds", str(seconds), "--speed", "1", "--stream-id", stream_id)


def wait_for_final(server: ServeProcess, stream_ids: list[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(server.events(s) for s in stream_ids):
        assert time.monotonic() < deadline, f"no final event of {stream_ids} within {timeout_s} s"
        time.sleep(0.2)


def assert_whole(server: ServeProcess, dialogue: dlg.Dialogue, stream_id: str, seconds: float = SECONDS) -> None:
    events = server.events(stream_id)
    turns = [t for t in dialogue.turns if t.end_s < seconds]
    assert len(events) == len(turns), (stream_id, events)
    assert all(e is not None for _, e in match(events, turns))
    assert {e["utterance_id"] for e in server.events(stream_id, "emotion_estimate")} == {
        e["utterance_id"] for e in events}


def test_cluster_model_replica_killed_mid_call_loses_no_final(cluster, dialogue, tmp_path):
    server = ServeProcess(tmp_path, CONFIG, TOKEN, "--cluster", cluster.address, zmq=False)
    try:
        calls = {sid: native_call(server, dialogue, sid) for sid in ("k1", "k2")}
        wait_for_final(server, ["k1"])
        (asr,) = list_actors(address=cluster.address, detail=True, filters=[
            ("class_name", "=", "ServeReplica:emo-stream:asr"), ("state", "=", "ALIVE")])
        os.kill(asr.pid, signal.SIGKILL)  # a crash: the process of Ray's replica, started by the test's cluster
        results = {sid: finish_client(p, timeout_s=600) for sid, p in calls.items()}
        for sid, r in results.items():
            assert r.closed["code"] == 1000, (sid, r.lines[-3:])
            assert_whole(server, dialogue, sid)
        restarted = cluster.replicas("asr")
        assert len(restarted) == 1 and asr.actor_id not in restarted
    finally:
        server.stop()


def test_cluster_worker_node_lost_ends_its_calls_with_an_error(cluster, dialogue, tmp_path):
    server = ServeProcess(tmp_path, CONFIG, TOKEN, "--cluster", cluster.address, zmq=False)
    try:
        (worker,) = cluster.workers
        calls = {sid: native_call(server, dialogue, sid) for sid in ("n1", "n2", "n3", "n4")}
        wait_for_final(server, list(calls))
        cluster.cluster.remove_node(worker, allow_graceful=False)
        results = {sid: finish_client(p, timeout_s=600) for sid, p in calls.items()}
        lost = {sid for sid, r in results.items() if r.replica.endswith(f"@{worker.node_id}")}
        assert len(lost) == 2  # two calls per replica (server.max_calls), one replica per node
        deadline = time.monotonic() + 120
        while not all(server.events(sid, "call_error") for sid in lost):
            assert time.monotonic() < deadline, server.log_text()[-3000:]
            time.sleep(0.5)
        for sid, r in results.items():
            if sid in lost:
                assert r.closed["code"] != 1000, (sid, r.closed)
                (error,) = server.events(sid, "call_error")
                validator("call_error").validate(error)
                assert error["error"] == "replica_lost"
                assert f"call {sid} lost: its ingress replica" in server.log_text()
            else:
                assert r.closed["code"] == 1000, (sid, r.closed)
                assert_whole(server, dialogue, sid)
                assert not server.events(sid, "call_error")

        # 6 s: the first turn whole, ended before the second starts (a call hung up mid-turn publishes that turn
        # too, cut short, which assert_whole would not count)
        after = finish_client(native_call(server, dialogue, "n5", seconds=6.0), timeout_s=600)
        assert after.closed["code"] == 1000
        assert after.replica.endswith(f"@{cluster.cluster.head_node.node_id}")
        assert_whole(server, dialogue, "n5", seconds=6.0)
    finally:
        server.stop()
