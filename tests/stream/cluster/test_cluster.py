"""``emo-stream serve --cluster`` on a real Ray cluster of two nodes started here: four calls at once over real
WebSockets (two Twilio, two native) from other processes, with the real models as Ray Serve deployments.

Shows: the ingress replicas sit on both nodes (Ray's state API) and took two calls each (the replica named in each
handshake); a wrong token is refused at the ingress; every call's events reach the bus (JSON Lines appended by
both replicas) with every final emotion event there, matching the dialogue's ground truth; the features come from
their own deployment (the default bundle reads encoder block 2, which the ASR's encoder does not return) and every
final was decoded by the ASR replica; SIGTERM deletes the application and exits 0. The cluster-wide view, through
the proxy (the view application, under ``/view``): ``GET /v1/streams`` lists the calls of both nodes while they run and
after, ``/v1/streams/<id>`` gives a call's summary so far and then its final one, and a dashboard's event stream
(``/v1/events``, read by another process) carries the events of every call of both nodes; all behind the token,
the event stream for its own origin only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from emostream.stream.cluster.view import VIEW_PREFIX as VIEW
from emostream.stream.events import validator
from tests.stream.cli_run import match
from tests.stream.cluster.ray_cluster import RayCluster
from tests.stream.server.serve_proc import SSE_CLIENT, ServeProcess, finish_client, start_client
from tests.support import dialogues as dlg

TOKEN = "tok-cluster-1"
SECONDS = 15.0
# Two calls per ingress replica at most, so four calls must spread 2 + 2 over the two nodes' replicas.
CONFIG = """
server: {max_calls: 2, idle_timeout_s: 60}
metrics: {interval_s: 0}
cluster:
  proxy_location: HeadOnly
  ingress: {min_replicas: 2, max_replicas: 2, num_cpus: 0.5, max_replicas_per_node: 1}
  asr: {num_cpus: 0.5}
"""


def listing_when(server: ServeProcess, done: Callable[[dict], bool], timeout_s: float = 120) -> dict:
    """``GET /v1/streams`` until ``done`` holds: the watcher hears of a call's start and end a moment after them."""
    deadline = time.monotonic() + timeout_s
    while not done(listed := server.get_json(f"{VIEW}/v1/streams", TOKEN)):
        assert time.monotonic() < deadline, f"/v1/streams not as expected within {timeout_s} s: {listed}"
        time.sleep(0.2)
    return listed


@pytest.fixture(scope="module")
def ray_cluster():
    c = RayCluster(nodes=2)
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def dialogue() -> dlg.Dialogue:
    if not dlg.EXAMPLE_JSON.exists():
        pytest.skip(f"{dlg.EXAMPLE_JSON} is missing (run examples/build_example.py)")
    return dlg.example_dialogue()


def test_cluster_four_calls_over_two_nodes(ray_cluster, dialogue, tmp_path):
    server = ServeProcess(tmp_path, CONFIG, TOKEN, "--cluster", ray_cluster.address, zmq=False)
    try:
        ingress = ray_cluster.replicas("ingress")
        assert len(ingress) == 2 and set(ingress.values()) == ray_cluster.node_ids
        models = {d: ray_cluster.replicas(d) for d in ("asr", "text", "inference")}
        assert all(len(r) == 1 for r in models.values()), models
        assert len(ray_cluster.replicas("features")) == 1  # the bundle's own encoder pass (block 2)

        audio = ["--audio", str(dialogue.path), "--seconds", str(SECONDS), "--speed", "1"]
        calls = {"tw1": "twilio", "tw2": "twilio", "na1": "native", "na2": "native"}
        events_url = server.url(f"{VIEW}/v1/events", TOKEN, "http")
        dashboard = start_client(events_url, "--until-final", *calls, script=SSE_CLIENT)
        clients = {
            sid: start_client(kind, server.url("/twilio", TOKEN) if kind == "twilio" else server.url("/v1/stream"),
                              *(["--turns", str(dlg.EXAMPLE_JSON)] if kind == "twilio" else ["--token", TOKEN]),
                              *(["--events"] if sid == "na1" else []), *audio, "--stream-id", sid)
            for sid, kind in calls.items()
        }
        # In the background: waiting for it here (a process start and a refusal, seconds on a loaded machine) ate
        # into the 15 s the four calls are live together, before the listing below was first read.
        wrong = start_client("native", server.url("/v1/stream"), "--token", "not-a-token", *audio, "--stream-id", "x")
        listed = listing_when(server, lambda x: set(calls) <= set(x["live"]))
        assert listed["live"] == sorted(calls)  # all four at once, two on each node (below)
        so_far = server.get_json(f"{VIEW}/v1/streams/tw1", TOKEN)
        assert so_far["stream_id"] == "tw1" and so_far["final"] is False
        for path, token, origin, status in [("/v1/streams", None, None, 401), ("/v1/streams/tw1", "nope", None, 401),
                                            ("/v1/streams/nobody", TOKEN, None, 404), ("/", None, None, 401),
                                            ("/", TOKEN, None, 200), ("/v1/events", TOKEN, "http://evil.example", 403)]:
            assert server.status(VIEW + path, token, origin) == status, path
        results = {sid: finish_client(p, timeout_s=400) for sid, p in clients.items()}
        assert listing_when(server, lambda x: not x["live"]) == {"live": [], "ended": sorted(calls)}
        # Checked at the ingress, before any audio.
        assert finish_client(wrong).closed == {"event": "refused", "status": 403}
        assert server.log_has("refused /v1/stream: missing or wrong token"), server.log_text()[-3000:]
        assert "not-a-token" not in server.log_text()

        for sid, r in results.items():
            assert r.closed == {"event": "closed", "code": 1000, "reason": "stream ended"}, (sid, server.log_text())
        by_replica = Counter(r.replica.split("@")[0] for r in results.values())
        assert sorted(by_replica.values()) == [2, 2]
        assert {r.replica.split("@")[1] for r in results.values()} == ray_cluster.node_ids

        turns = [t for t in dialogue.turns if t.end_s < SECONDS]
        check = validator("emotion")
        for sid, kind in calls.items():
            events = server.events(sid)
            assert len(events) == len(turns) == 3, (sid, events)
            for turn, event in match(events, turns):
                assert event is not None, (sid, turn)
                check.validate(event)
                if kind == "twilio":
                    assert event["speaker"] == turn.speaker
            # every utterance that got its early estimate got its final too
            estimated = {e["utterance_id"] for e in server.events(sid, "emotion_estimate")}
            assert estimated == {e["utterance_id"] for e in events}
            (summary,) = server.events(sid, "summary")
            assert summary["final"] and summary["utterances"] == 3
            served = server.get_json(f"{VIEW}/v1/streams/{sid}", TOKEN)  # the watcher's, through the view
            assert served == summary | {"emitted_at": served["emitted_at"]}
        # the dashboard's stream: every call's events, whichever node served it, as they were published
        streamed = finish_client(dashboard, timeout_s=60).lines
        for sid in calls:
            assert [e for e in streamed if e["stream_id"] == sid and e["type"] == "emotion"] == server.events(sid)
        # every final decoded by the ASR replica (and a speculative decode of a pause that speech resumed, if any)
        finals = sum(len(server.events(sid)) for sid in calls)
        assert ray_cluster.call("asr", "encoder_passes")["final"] >= finals == 12
        # events asked for on the call's own socket came back on it too, through the ASGI ingress
        assert [e["utterance_id"] for e in results["na1"].messages("emotion")] == [
            e["utterance_id"] for e in server.events("na1")]
        assert server.terminate(timeout_s=120) == 0
        assert "deleting application emo-stream" in server.log_text()
    finally:
        server.stop()
