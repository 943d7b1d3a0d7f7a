"""``emo-stream serve`` end to end: a real server process with the real models, real WebSocket clients in other
processes, events checked on JSON Lines, on ZeroMQ and on the client's own socket.

One server serves the whole module (loading the models once); the last test stops it with SIGTERM.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from emostream.stream.events import validator
from tests.stream.cli_run import match, word_error_rate
from tests.stream.server.serve_proc import ServeProcess, finish_client, run_client, start_client
from tests.support import dialogues as dlg
from tests.support.messaging import free_port

TOKENS = ("tok-alpha-123", "tok-beta-456")
MAX_CALLS = 4
# The shipped bundle's fused anger for the calls below (held-out RAVDESS test actors): the angry customer's (actor
# 21) two angry clips 0.42 and 0.44, his neutral and happy ones at most 0.12; the agent's (actor 24) angry clips 0.49
# and 0.51. 0.3 separates them with a margin either way (the default 0.6 suits a model surer of itself; actor 23,
# the customer here before, is heard as joyful rather than angry by it: fused anger 0.20 and 0.28).
ANGER_THRESHOLD = 0.3
# A rule that fires for sure on the real call (every customer utterance has arousal >= -1), so that where it must
# and must not fire is exact: at the customer's second utterance, never on the agent's, never at the first.
CONFIG = f"""
server: {{max_calls: {MAX_CALLS}, idle_timeout_s: 3.0, max_message_bytes: 65536}}
metrics: {{interval_s: 0}}
alerts:
  rules:
    - {{name: customer_heard, speaker: customer, measure: arousal, op: ">=", threshold: -1.0, count: 2, window: 3,
       severity: critical, cooldown_s: 0}}
    - {{name: customer_anger, speaker: customer, measure: anger, op: ">=", threshold: {ANGER_THRESHOLD}, count: 2,
       window: 3, severity: warning, cooldown_s: 60}}
"""
BOUNDARY_TOLERANCE_S = 0.35
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PROMETHEUS_PORT = free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = ServeProcess(tmp_path_factory.mktemp("serve"), CONFIG, ",".join(TOKENS), "--prometheus-port",
                     str(PROMETHEUS_PORT))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dialogue() -> dlg.Dialogue:
    if not dlg.EXAMPLE_JSON.exists():
        pytest.skip(f"{dlg.EXAMPLE_JSON} is missing (run examples/build_example.py)")
    return dlg.example_dialogue()


def audio_args(dialogue: dlg.Dialogue, seconds: float) -> list[str]:
    return ["--audio", str(dialogue.path), "--seconds", str(seconds)]


def wait_for_speech(server: ServeProcess, stream_id: str) -> None:
    """Until the call is live and its first utterance is being heard (a partial transcript is out)."""
    deadline = time.monotonic() + 60
    while not server.events(stream_id, "partial"):
        assert time.monotonic() < deadline, f"no partial of {stream_id} within 60 s"
        time.sleep(0.1)


def close_after(url: str, *messages: str | bytes, headers: dict | None = None) -> tuple[int, str]:
    """Sends ``messages`` on a fresh connection and returns the server's close code and reason."""
    with connect(url, additional_headers=headers or {}, compression=None, max_size=None) as ws:
        try:
            for m in messages:
                ws.send(m)
            while True:
                ws.recv(timeout=30)
        except ConnectionClosed as e:
            assert e.rcvd is not None, "the server dropped the connection without a close frame"
            return e.rcvd.code, e.rcvd.reason
    raise AssertionError("unreachable")


def test_twilio_call_gives_two_speakers_on_the_bus(server, dialogue, zmq_collector):
    sub = zmq_collector(server.zmq, "emostream/tw1/")
    result = run_client("twilio", server.url("/twilio", TOKENS[1]), *audio_args(dialogue, 15.0),
                        "--turns", str(dlg.EXAMPLE_JSON), "--stream-id", "tw1")
    assert result.closed == {"event": "closed", "code": 1000, "reason": "stream ended"}
    events = server.events("tw1")
    turns = [t for t in dialogue.turns if t.end_s < 15.0]
    assert len(events) == len(turns) == 3
    check = validator("emotion")
    for turn, event in match(events, turns):
        check.validate(event)
        assert event["speaker"] == turn.speaker  # inbound = customer, outbound = agent (server.twilio_roles)
        assert event["channel"] == (0 if turn.speaker == "customer" else 1)
        assert abs(event["start_s"] - turn.start_s) <= BOUNDARY_TOLERANCE_S
        assert abs(event["end_s"] - turn.end_s) <= BOUNDARY_TOLERANCE_S
    assert word_error_rate(match(events, turns)) <= 0.5  # telephone audio: 8 kHz mu-law
    received = sub.wait_for(5, timeout_s=30)
    on_zmq = {m.json()["utterance_id"] for m in received if m.topic == "emostream/tw1/emotion"}
    assert on_zmq == {e["utterance_id"] for e in events}

    # the alert: exactly once, at the customer's second utterance, on its own topic
    ids = [e["utterance_id"] for e in sorted(events, key=lambda e: e["seq"])]
    (alert,) = [a for a in server.events("tw1", "alert") if a["rule"] == "customer_heard"]
    validator("alert").validate(alert)
    assert (alert["rule"], alert["severity"], alert["speaker"]) == ("customer_heard", "critical", "customer")
    assert alert["utterance_ids"] == [ids[0], ids[2]]
    assert [m.json()["alert_id"] for m in received if m.topic == "emostream/tw1/alert"] == [alert["alert_id"]]
    prometheus = urllib.request.urlopen(f"http://127.0.0.1:{PROMETHEUS_PORT}/metrics", timeout=10).read().decode()
    assert 'emostream_alerts_total{rule="customer_heard",severity="critical",stream="tw1"} 1.0' in prometheus

    # the summary: on the bus at the end, and served afterwards
    (summary,) = server.events("tw1", "summary")
    validator("summary").validate(summary)
    customer = [e for e in events if e["speaker"] == "customer"]
    assert summary["final"] and summary["utterances"] == 3
    assert summary["speakers"]["customer"]["utterances"] == 2 and summary["speakers"]["agent"]["utterances"] == 1
    assert summary["speakers"]["customer"]["talk_s"] == pytest.approx(sum(e["end_s"] - e["start_s"]
                                                                          for e in customer), abs=0.01)
    assert summary["speakers"]["customer"]["alerts"] == [alert["alert_id"]]
    served = server.get_json("/v1/streams/tw1", TOKENS[0])
    assert served == summary | {"emitted_at": served["emitted_at"]}


def angry_and_calm_calls(folder) -> tuple[dlg.Dialogue, dlg.Dialogue]:
    """Two stereo calls of held-out RAVDESS actors: customer (21) on the left, agent (24) on the right."""
    c = dlg.ravdess_clip
    angry = [("customer", c(21, 1, 1)), ("agent", c(24, 1, 2)), ("customer", c(21, 5, 1, intensity=2)),
             ("agent", c(24, 2, 1)), ("customer", c(21, 5, 2, intensity=2)), ("agent", c(24, 1, 1))]
    calm = [("customer", c(21, 1, 2)), ("agent", c(24, 5, 1, intensity=2)),  # the agent is the angry one
            ("customer", c(21, 3, 1, intensity=2)), ("agent", c(24, 5, 2, intensity=2)), ("customer", c(21, 2, 2))]
    return (dlg.build_dialogue(folder / "angry.flac", angry, stereo=True),
            dlg.build_dialogue(folder / "calm.flac", calm, stereo=True))


def test_alert_fires_where_the_ground_truth_says_the_customer_is_angry(server, tmp_path):
    angry, calm = angry_and_calm_calls(tmp_path)
    results = {}
    for name, d in (("angry1", angry), ("calm1", calm)):
        results[name] = run_client("native", server.url("/v1/stream"), "--token", TOKENS[0], "--audio", str(d.path),
                                   "--stream-id", name, "--events", "--channel-names", "customer,agent")
        assert results[name].closed["code"] == 1000
    alerts = [a for a in results["angry1"].messages("alert") if a["rule"] == "customer_anger"]
    events = results["angry1"].messages("emotion")
    pairs = match(events, angry.turns)
    angry_ids = [e["utterance_id"] for t, e in pairs if t.speaker == "customer" and t.emotion == "anger"]
    assert len(angry_ids) == 2 and len(alerts) == 1, (alerts, [(t.emotion, e and e["scores"]) for t, e in pairs])
    assert alerts[0]["utterance_ids"] == angry_ids  # fired at the second angry utterance, by those two only
    assert alerts[0]["at_s"] == pairs[4][1]["end_s"]
    assert not [a for a in results["calm1"].messages("alert") if a["rule"] == "customer_anger"]  # the agent's anger
    summary = results["angry1"].messages("summary")[-1]
    assert summary["speakers"]["customer"]["peak_anger"]["utterance_id"] in angry_ids


def test_native_stream_gets_its_events_on_the_socket(server, dialogue):
    result = run_client("native", server.url("/v1/stream"), "--token", TOKENS[0], *audio_args(dialogue, 10.5),
                        "--stream-id", "nat1", "--events")
    assert result.closed == {"event": "closed", "code": 1000, "reason": "stream ended"}
    on_socket = result.messages("emotion")
    assert len(on_socket) == 2
    for e in on_socket:
        validator("emotion").validate(e)
    assert [e["utterance_id"] for e in on_socket] == [e["utterance_id"] for e in server.events("nat1")]
    assert {e["data"]["stream_id"] for e in result.lines if e["event"] == "message"} == {"nat1"}  # no other call's
    last = [x["data"] for x in result.lines if x["event"] == "message"][-1]
    assert last["type"] == "summary" and last["final"] and last["utterances"] == 2


@pytest.mark.parametrize("path", ["/twilio", "/v1/stream"])
def test_missing_or_wrong_token_is_refused(server, path):
    for url, headers in [(server.url(path), {}), (server.url(path, "nope"), {}),
                         (server.url(path), {"Authorization": "Bearer nope"}),
                         (server.url(path), {"Authorization": f"Basic {TOKENS[0]}"})]:
        with pytest.raises(InvalidStatus) as err:
            connect(url, additional_headers=headers, open_timeout=30)
        assert err.value.response.status_code == 401


def test_capacity_is_refused_with_1013_and_idle_connections_close(server):
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(server.url("/v1/stream", TOKENS[0]), compression=None))
                for _ in range(MAX_CALLS)]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:  # a flood: every one refused, none absorbed
            flood = list(pool.map(lambda _: close_after(server.url("/twilio", TOKENS[0])), range(24)))
        assert flood == [(1013, "server full")] * 24
        t0 = time.monotonic()
        for ws in held:  # they never sent a start message: closed after server.idle_timeout_s
            with pytest.raises(ConnectionClosed) as err:
                ws.recv(timeout=30)
            assert (err.value.rcvd.code, err.value.rcvd.reason) == (1001, "idle timeout")
        assert time.monotonic() - t0 < 10
    start = json.dumps({"stream_id": "after", "sample_rate": 8000, "encoding": "mulaw"})
    assert close_after(server.url("/v1/stream", TOKENS[0]), start, '{"type": "stop"}')[0] == 1000  # slots back


def test_malformed_messages_close_only_their_connection(server, dialogue):
    good = start_client("twilio", server.url("/twilio", TOKENS[0]), *audio_args(dialogue, 11.0),
                        "--stream-id", "good1", "--speed", "2")
    twilio, native = server.url("/twilio", TOKENS[0]), server.url("/v1/stream", TOKENS[0])
    wait_for_speech(server, "good1")
    live = server.get_json("/v1/streams/good1", TOKENS[0])
    assert live["final"] is False and live["stream_id"] == "good1"
    assert "good1" in server.get_json("/v1/streams", TOKENS[0])["live"]
    for path, token, status in [("/v1/streams/nobody", TOKENS[0], 404), ("/v1/streams/good1", None, 401),
                                ("/v1/streams", "nope", 401)]:
        assert server.status(path, token) == status
    start = json.dumps({"event": "start", "start": {"streamSid": "MZx", "callSid": "CAx", "tracks": ["inbound"],
                                                    "mediaFormat": {"encoding": "audio/x-mulaw",
                                                                    "sampleRate": 8000, "channels": 1}}})
    media = {"event": "media", "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAAA"}}
    bad_b64 = json.dumps(media | {"media": media["media"] | {"payload": "not base64!"}})
    native_start = {"stream_id": "bad1", "sample_rate": 16000, "encoding": "pcm_s16le"}
    cases = [
        (close_after(twilio, "{oops"), 1007, "not valid JSON"),
        (close_after(twilio, start, bad_b64), 1007, "base64"),
        (close_after(twilio, json.dumps(media)), 1008, "before 'start'"),
        (close_after(native, b"\x00\x01" * 100), 1008, "audio before the start message"),
        (close_after(native, json.dumps(native_start | {"encoding": "opus"})), 1007, "encoding"),
        (close_after(native, json.dumps(native_start), b"\x00\x01\x02"), 1007, "whole number"),
        (close_after(native, json.dumps(native_start), b"\x00" * 70000), 1009, ""),
        (close_after(native, json.dumps(native_start | {"stream_id": "good1"})), 1008, "already live"),
    ]
    for (code, reason), want_code, fragment in cases:
        assert code == want_code and fragment in reason, (code, reason, fragment)
    result = finish_client(good)
    assert result.closed == {"event": "closed", "code": 1000, "reason": "stream ended"}
    assert len(server.events("good1")) == 2  # the call went on untouched: both of its utterances


def test_vanished_client_gets_its_last_utterance_published(server, dialogue):
    result = run_client("twilio", server.url("/twilio", TOKENS[0]), *audio_args(dialogue, 15.0), "--stream-id",
                        "gone1", "--vanish-at", "3.0")
    assert result.lines == [{"event": "opened", "replica": None}]  # connected, then died without a word
    deadline = time.monotonic() + 60
    while not (events := server.events("gone1")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(events) == 1, "the utterance cut by the hang-up was not published"
    assert events[0]["end_s"] <= 3.1 and events[0]["transcript"]


def test_logs_hold_no_token(server):
    text = server.log_text()
    assert "GET /twilio 101" in text  # the access log is on (-v)
    assert not any(t in text for t in (*TOKENS, "nope"))


def test_dashboard_needs_a_token_and_serves_its_own_origin_only(server):
    for path, token, origin, status in [("/", None, None, 401), ("/v1/events", None, None, 401),
                                        ("/v1/events", TOKENS[0], "http://evil.example", 403)]:
        assert server.status(path, token, origin) == status


def test_dashboard_shows_a_live_call_in_a_real_browser(server, dialogue, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = dlg.require_binary("chromium")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"http://127.0.0.1:{server.port}/?token={TOKENS[0]}")
            page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=30000)
            call = start_client("twilio", server.url("/twilio", TOKENS[0]), *audio_args(dialogue, 15.0),
                                "--turns", str(dlg.EXAMPLE_JSON), "--stream-id", "dash1", "--speed", "2")
            card = page.locator('section.call[data-stream="dash1"]')
            card.wait_for(timeout=60000)  # the call appears while it runs
            assert card.locator(".state").text_content() == "live"
            finals = card.locator("ol.transcript li.final")
            finals.first.wait_for(timeout=60000)
            first = finals.count()
            sync_api.expect(finals).to_have_count(3, timeout=60000)  # the transcript grows, no reload
            assert first < 3
            sync_api.expect(card.locator(".alerts")).to_have_text(re.compile(r"^\d+ alerts?$"), timeout=30000)
            speakers = card.locator(".speaker").evaluate_all("els => els.map(e => e.dataset.speaker)")
            assert sorted(speakers) == ["agent", "customer"]
            points = page.evaluate("""() => Chart.getChart(document.querySelector(
                'section.call[data-stream="dash1"] canvas')).data.datasets.map(d => d.data.length)""")
            assert sorted(points) == [1, 2]  # one valence point per utterance, one line per speaker
            assert "latency" in card.locator(".latency").text_content()
            result = finish_client(call)
            assert result.closed["code"] == 1000
            sync_api.expect(card.locator(".state")).to_have_text("ended", timeout=30000)
            # every alert published for the call, and only those, is counted on its badge (customer_heard for sure;
            # customer_anger where the furious customer's two turns score >= ANGER_THRESHOLD through the phone line)
            published = len(server.events("dash1", "alert"))
            assert published >= 1
            sync_api.expect(card.locator(".alerts")).to_have_text(f"{published} alert{'s' if published > 1 else ''}")
            card.screenshot(path=str(tmp_path / "dashboard.png"))
            if os.environ.get("EMO_STREAM_SCREENSHOT"):  # refreshes the README's picture
                page.screenshot(path=os.environ["EMO_STREAM_SCREENSHOT"])
        finally:
            browser.close()


def test_sigterm_finalises_live_calls_and_exits_0(server, dialogue):
    call = start_client("twilio", server.url("/twilio", TOKENS[1]), *audio_args(dialogue, 20.0), "--stream-id",
                        "term1", "--speed", "1")
    wait_for_speech(server, "term1")
    time.sleep(1.0)
    assert server.terminate() == 0
    result = finish_client(call)
    assert result.closed == {"event": "closed", "code": 1001, "reason": "server shutting down"}
    events = server.events("term1")
    assert len(events) == 1 and events[0]["end_s"] < 5.22 and events[0]["transcript"]
    (summary,) = server.events("term1", "summary")
    assert summary["final"] and summary["utterances"] == 1
