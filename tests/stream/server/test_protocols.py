"""The server's protocol parsers, codecs and network source, without a server: exact values and a fuzz.

The parsers face the internet: whatever a client sends, they may only raise ``ProtocolError`` (which closes that
one connection with a specific code and reason), never anything that would escape into the server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.server import codecs, native, twilio
from emostream.stream.server.protocol import INVALID_DATA, POLICY, ProtocolError
from emostream.stream.sources.network import NetworkSource


def test_g711_tables_match_the_reference_decoder():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the stdlib reference, gone in Python 3.13
    codes = bytes(range(256))
    assert np.array_equal(codecs.ULAW, np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"))
    assert np.array_equal(codecs.ALAW, np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))


def test_mulaw_encoder_picks_the_nearest_code():
    assert codecs.decode("mulaw", codecs.encode_mulaw(codecs.ULAW), 1)[0].tolist() == codecs.ULAW.tolist()
    ramp = np.arange(-32768, 32768, 7, dtype=np.int16)
    decoded = codecs.decode("mulaw", codecs.encode_mulaw(ramp), 1)[0].astype(np.int32)
    table = np.unique(codecs.ULAW.astype(np.int32))
    nearest = np.abs(ramp.astype(np.int32)[:, None] - table[None, :]).min(axis=1)
    assert np.array_equal(np.abs(decoded - ramp), nearest)


def test_decode_deinterleaves_and_cleans_floats():
    stereo = np.array([1, -1, 2, -2, 3, -3], "<i2").tobytes()
    assert codecs.decode("pcm_s16le", stereo, 2).tolist() == [[1, 2, 3], [-1, -2, -3]]
    floats = np.array([0.5, np.nan, np.inf, -2.0], "<f4").tobytes()
    assert codecs.decode("pcm_f32le", floats, 1).tolist() == [[16383, 0, 0, -32767]]
    with pytest.raises(ProtocolError, match="whole number") as err:
        codecs.decode("pcm_s16le", b"\x00\x01\x02", 1)
    assert err.value.code == INVALID_DATA


def media(track: str, timestamp_ms: int, samples: np.ndarray) -> str:
    order = np.argsort(codecs.ULAW)  # exact codes for values that are in the table
    codes = order[np.searchsorted(codecs.ULAW[order], samples)].astype(np.uint8)
    return json.dumps({"event": "media", "media": {"track": track, "chunk": "1", "timestamp": str(timestamp_ms),
                                                   "payload": base64.b64encode(codes.tobytes()).decode()}})


START = json.dumps({"event": "start", "start": {
    "streamSid": "MZ1", "callSid": "CA/1+#", "tracks": ["inbound", "outbound"], "customParameters": {},
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})


def test_twilio_tracks_become_aligned_channels():
    call = twilio.TwilioCall()
    assert call.feed(twilio.parse(START)) is None
    assert twilio.stream_id_for(call.start) == "CA_1_"  # topic-safe
    assert call.feed(twilio.parse(media("inbound", 0, codecs.ULAW[[0x80]].repeat(160)))) is None  # waits
    block = call.feed(twilio.parse(media("outbound", 0, codecs.ULAW[[0x00]].repeat(160))))
    assert block.shape == (2, 160) and (block[0] == codecs.ULAW[0x80]).all() and (block[1] == codecs.ULAW[0]).all()
    # 40 ms of inbound lost: its gap becomes silence, so both tracks keep the same clock
    out = call.feed(twilio.parse(media("inbound", 60, codecs.ULAW[[0x90]].repeat(160))))
    assert out is None
    block = call.feed(twilio.parse(media("outbound", 20, codecs.ULAW[[0x10]].repeat(480))))
    assert block.shape == (2, 480)
    assert (block[0, :320] == 0).all() and (block[0, 320:] == codecs.ULAW[0x90]).all()
    # a track that stops sending is padded after MAX_SKEW_S, so the other speaker is still heard
    for k in range(30):
        block = call.feed(twilio.parse(media("inbound", 80 + 20 * k, np.zeros(160, np.int16))))
    assert block is not None and block.shape[0] == 2
    assert call.flush() is not None


@pytest.mark.parametrize("frame, code, fragment", [
    ("{not json", INVALID_DATA, "not valid JSON"),
    ("[1, 2]", INVALID_DATA, "not a JSON object"),
    ('{"event": "media", "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "@@@"}}',
     INVALID_DATA, "base64"),
    ('{"event": "media", "media": {"track": "sideways", "payload": ""}}', INVALID_DATA, "unknown track"),
    ('{"event": "hello"}', INVALID_DATA, "unknown event"),
    ('{"event": "start", "start": {"streamSid": "MZ", "callSid": "CA", "mediaFormat": {"encoding": "audio/l16"}}}',
     INVALID_DATA, "audio/x-mulaw"),
])
def test_twilio_malformed_messages_name_the_fault(frame, code, fragment):
    with pytest.raises(ProtocolError, match=fragment) as err:
        twilio.parse(frame)
    assert err.value.code == code


def test_twilio_order_is_enforced():
    call = twilio.TwilioCall()
    with pytest.raises(ProtocolError, match="before 'start'") as err:
        call.feed(twilio.parse(media("inbound", 0, np.zeros(160, np.int16))))
    assert err.value.code == POLICY
    call.feed(twilio.parse(START))
    with pytest.raises(ProtocolError, match="second 'start'"):
        call.feed(twilio.parse(START))


def test_native_start_is_validated_by_its_schema():
    s = native.parse_start('{"stream_id": "r1", "sample_rate": 8000, "encoding": "alaw", "channels": 2, '
                           '"channel_names": ["agent", "customer"], "events": true}')
    assert (s.stream_id, s.channels, s.channel_names, s.events) == ("r1", 2, ("agent", "customer"), True)
    for bad, fragment in [('{"stream_id": "r", "sample_rate": 8000, "encoding": "opus"}', "encoding"),
                          ('{"stream_id": "r\\n", "sample_rate": 8000, "encoding": "mulaw"}', "stream_id"),
                          ('{"stream_id": "r", "sample_rate": 8000, "encoding": "mulaw", "channel_names": ["a", "b"]}',
                           "2 channel_names for 1 channels"),
                          ('{"stream_id": "r", "sample_rate": 100, "encoding": "mulaw"}', "sample_rate")]:
        with pytest.raises(ProtocolError, match=fragment) as err:
            native.parse_start(bad)
        assert err.value.code == INVALID_DATA
    with pytest.raises(ProtocolError, match="only binary audio") as err:
        native.is_stop('{"type": "pause"}')
    assert err.value.code == POLICY


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
twilio_like = st.fixed_dictionaries(
    {"event": st.sampled_from(["start", "media", "stop", "mark", "connected", "dtmf", "x"])},
    optional={"start": json_values | st.fixed_dictionaries({"streamSid": st.text(max_size=5),
                                                              "callSid": st.text(max_size=5)},
                                                             optional={"tracks": json_values,
                                                                       "mediaFormat": json_values,
                                                                       "customParameters": json_values}),
              "media": json_values | st.fixed_dictionaries({}, optional={
                  "track": st.sampled_from(["inbound", "outbound", 3]), "chunk": json_values,
                  "timestamp": st.integers(-10**12, 10**12) | st.text(max_size=8),
                  "payload": st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
                  | st.text(max_size=8)})},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(twilio_like.map(json.dumps) | st.text(max_size=40) | st.binary(max_size=40), max_size=6))
def test_fuzz_twilio_raises_only_protocol_errors(frames):
    call = twilio.TwilioCall()
    for frame in frames:
        try:
            block = call.feed(twilio.parse(frame))
        except ProtocolError as e:
            assert 1000 <= e.code < 5000 and len(e.close_reason) <= 123
            continue
        if block is not None:
            assert block.dtype == np.int16 and block.shape[0] == call.channels


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values.map(json.dumps) | st.text(max_size=60) | st.binary(max_size=60), st.binary(max_size=64))
def test_fuzz_native_raises_only_protocol_errors(first, frame):
    try:
        start = native.parse_start(first)
    except ProtocolError:
        return
    try:
        block = native.audio(start, frame)
        assert block.shape[0] == start.channels and block.dtype == np.int16
    except ProtocolError as e:
        assert e.code == INVALID_DATA
    with pytest.raises(ProtocolError):
        native.is_stop(frame)


def test_network_source_resamples_frames_and_ends():
    async def go() -> list:
        source = NetworkSource("n", 2, 8000, 480)
        stop = asyncio.Event()
        out: list = []

        async def consume() -> None:
            async for m in source(stop):
                out.append(m)

        task = asyncio.create_task(consume())
        for _ in range(10):
            await source.push(np.full((2, 800), 3000, np.int16))  # 10 x 100 ms
        source.end()
        await asyncio.wait_for(task, 10)
        await source.push(np.zeros((2, 800), np.int16))  # after the end: dropped, never blocks
        return out

    out = asyncio.run(go())
    frames = [m for m in out if isinstance(m, AudioFrame)]
    assert isinstance(out[-1], EndOfStream) and out[-1].error == ""
    assert {f.channel for f in frames} == {0, 1}
    assert 33 <= len(frames) // 2 <= 34  # 1 s at 16 kHz in 30 ms frames, the tail padded
    assert all(len(f.samples) == 480 for f in frames)


def test_network_source_ends_on_stop_without_an_end_message():
    async def go() -> list:
        source = NetworkSource("n", 1, 16000, 480)
        stop = asyncio.Event()
        await source.push(np.ones((1, 4800), np.int16))
        stop.set()
        return [m async for m in source(stop)]

    out = asyncio.run(go())
    assert isinstance(out[-1], EndOfStream)
