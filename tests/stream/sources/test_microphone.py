"""Live capture through a real PulseAudio daemon (no sound card needed), device errors, and the live terminal view."""

from __future__ import annotations

import asyncio
import io
import json
import select
import signal
import subprocess
import sys
import time

import jiwer
import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent, EstimateEvent, MetricsEvent, PartialEvent, validator
from emostream.stream.observe.live_view import LiveView
from emostream.stream.sources.microphone import CaptureStats, capture
from emostream.stream.stages.vad import SAMPLE_RATE
from tests.stream.cli_run import normalise
from tests.support import pulse

FRAME = 480  # 30 ms, the default VAD frame


def _helper(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.pulse", *args]


def test_microphone_delivers_the_fifo_audio_sample_for_sample_in_real_time(example_dialogue, tmp_path):
    pulse.require()
    ref, sr = sf.read(example_dialogue.path, dtype="int16")
    assert sr == SAMPLE_RATE and ref.ndim == 1
    ref = ref[: 10 * SAMPLE_RATE]  # 10 s of the dialogue (two turns and a pause) say as much as all of it
    out = tmp_path / "captured.npz"
    with pulse.PulseMic(tmp_path / "pulse") as mic:
        listing = subprocess.run(_helper("list"), env=mic.env, capture_output=True, text=True, timeout=120)
        assert listing.returncode == 0, listing.stderr
        assert any(line.split()[1:2] == ["pulse"] or " pulse " in line for line in listing.stdout.splitlines()), (
            listing.stdout
        )

        t_launch = time.monotonic()
        proc = subprocess.Popen(_helper("capture", str(out), "--device", "pulse", "--frame-samples", str(FRAME)),
                                env=mic.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.poll() else ""
            t_ready = time.monotonic()
            started = mic.play(ref).started  # blocks while the dialogue is "spoken", at real-time pace
            time.sleep(1.0)  # the tail crosses the FIFO, the daemon and ALSA
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err

    z = np.load(out)
    captured, index, wall = z["samples"][0], z["index"], z["wall"]
    assert str(z["error"]) == ""
    assert int(z["overruns"]) == 0 and int(z["dropped"]) == 0, (int(z["overruns"]), int(z["dropped"]))
    assert list(index) == list(range(len(index))) and int(z["eos_frames"]) == len(index) == int(z["frames"])
    assert len(captured) == len(index) * FRAME
    assert np.all(np.diff(wall) > 0), "frames must arrive in order with increasing wall times"

    # Align by cross-correlation, then demand exact equality: the dialogue, and silence (fed) around it.
    n = 1 << int(np.ceil(np.log2(len(captured) + len(ref))))
    spectrum = np.fft.rfft(captured.astype(np.float64), n) * np.conj(np.fft.rfft(ref.astype(np.float64), n))
    corr = np.fft.irfft(spectrum, n)
    lag = int(np.argmax(corr[: len(captured)]))
    assert lag + len(ref) <= len(captured), "the end of the dialogue was not captured"
    expected = np.zeros_like(captured)
    expected[lag : lag + len(ref)] = ref
    mismatches = int(np.count_nonzero(captured != expected))
    assert mismatches == 0, f"{mismatches} samples differ after aligning at lag {lag}"
    assert float(z["peak"]) == pytest.approx(np.abs(ref.astype(np.int32)).max() / 32768.0)

    # Real time, not a burst: the dialogue's frames arrive over its duration, soon after it was "spoken".
    first, last = lag // FRAME, (lag + len(ref) - 1) // FRAME
    span = wall[last] - wall[first]
    duration = len(ref) / SAMPLE_RATE
    delay = wall[first] - started
    print(f"\nmic test: helper ready {t_ready - t_launch:.2f} s after launch; dialogue {duration:.2f} s arrived over "
          f"{span:.2f} s; first frame {delay * 1000:.0f} ms after its first sample was written; "
          f"last frame {(wall[last] - started - duration) * 1000:.0f} ms after the last")
    assert abs(span - duration) < 0.5, (span, duration)
    assert 0 <= delay < 1.0, delay


@pytest.mark.parametrize(("device", "named"), [("no-such-microphone-xyz", "'no-such-microphone-xyz'"), (9999, "9999")])
def test_unknown_device_is_a_user_error_that_points_to_list_devices(device, named):
    pytest.importorskip("sounddevice", exc_type=OSError)  # PortAudio itself missing: a different message

    async def first_item() -> object:
        gen = capture(device, "mic", FRAME, asyncio.Event(), CaptureStats())
        try:
            return await anext(gen)
        finally:
            await gen.aclose()

    with pytest.raises(UserError) as e:
        asyncio.run(first_item())
    message = str(e.value)
    assert named in message and "--list-devices" in message
    assert "\n" not in message


STAGES = ("endpoint", "features", "estimate", "asr", "text_embedding", "context", "inference", "queue")


def _utterance(stream: str, n: int, speaker: str, start: float, end: float, e2e: float) -> dict:
    latency = {stage: 10.0 for stage in STAGES} | {"end_to_end": e2e}
    return dict(stream_id=stream, utterance_id=f"{stream}-{n:04d}", seq=n, channel=0, speaker=speaker,
                start_s=start, end_s=end, latency_ms=latency, emitted_at=time.time())


def _emotion_pair(u: dict, label: str, conf: float, audio_conf: float, valence: float, arousal: float,
                  transcript: str) -> tuple[EstimateEvent, EmotionEvent]:
    scores = {label: conf, "neutral": round(1 - conf, 3)}
    audio_scores = {label: audio_conf, "neutral": round(1 - audio_conf, 3)}
    estimate = EstimateEvent(**{**u, "latency_ms": u["latency_ms"] | {"end_to_end": 310.0}}, label=label,
                             confidence=audio_conf, scores=audio_scores, valence=valence, arousal=arousal,
                             model_id="test")
    final = EmotionEvent(**u, transcript=transcript, label=label, confidence=conf, scores=scores,
                         modality_scores={"audio": estimate.scores, "text": scores}, valence=valence, arousal=arousal,
                         model_id="test", split=False, asr={"avg_logprob": -0.2, "no_speech_prob": 0.01})
    return estimate, final


def test_live_view_shows_transcript_emotion_per_speaker_latency_and_input_health(capsys, tmp_path):
    a = _utterance("call-7", 1, "customer", 0.5, 5.2, 412.0)
    b = _utterance("call-7", 2, "agent", 6.2, 9.0, 655.0)
    est_a, fin_a = _emotion_pair(a, "anger", 0.83, 0.61, -0.7, 0.8, "my internet is still down")
    est_b, fin_b = _emotion_pair(b, "joy", 0.77, 0.52, 0.6, 0.3, "glad to help you today")
    part_a = PartialEvent(**a, revision=2, committed="my internet", tentative="is still")
    part_b = PartialEvent(**b, revision=1, committed="", tentative="glad to")
    metrics = MetricsEvent(stream_id="call-7", emitted_at=time.time(), window_s=5.0, audio_s=10.0, wall_s=10.2,
                           real_time_factor=0.31, utterances=2, latency_ms={"asr": {"p50": 90, "p95": 120, "p99": 130}},
                           queue_depths={"asr": 0}, dropped_partials=2, input_overruns=0)
    for ev in (est_a, fin_a, part_a, metrics):
        validator(ev.type).validate(ev.to_dict())  # the view is fed what the pipeline really publishes

    stats = CaptureStats(overruns=2, dropped_frames=1, frames=300)
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    view = LiveView(stats=stats, console=console)

    def snapshot() -> str:
        c = Console(file=io.StringIO(), width=100, force_terminal=False)
        c.print(view.render())
        return c.file.getvalue()

    async def session() -> dict[str, str]:
        seen = {}
        await view.start()
        await view.publish(part_a)
        seen["partial"] = snapshot()
        await view.publish(est_a.to_dict())  # plain dicts are accepted too
        seen["estimate"] = snapshot()
        await view.publish(fin_a)
        await view.publish(part_a)  # a late partial of a finished utterance is ignored
        await view.publish(part_b)
        await view.publish(est_b)
        await view.publish(fin_b.to_dict())
        await view.publish(metrics)
        await view.publish({"type": "something_new", "stream_id": "call-7"})
        await view.close()
        return seen

    seen = asyncio.run(session())
    assert "my internet is still" in seen["partial"] and "customer" in seen["partial"]
    assert "anger? 0.61" in seen["estimate"] and "(audio only)" in seen["estimate"]
    assert "transcribing" in seen["estimate"]

    out = console.file.getvalue()
    (tmp_path / "live_view.txt").write_text(out)  # for a human look: pytest --basetemp=DIR
    assert "my internet is still down" in out and "glad to help you today" in out
    assert "anger 0.83" in out and "joy 0.77" in out  # transcript lines
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["customer"], ["agent"])}
    assert "anger" in rows["customer"] and "-0.70" in rows["customer"] and "+0.80" in rows["customer"]
    assert "joy" in rows["agent"] and "+0.60" in rows["agent"]
    assert "(audio only)" not in out and "transcribing" not in out and "glad to\n" not in out
    assert "latency 655 ms" in out and "p50 534 ms" in out and "p95 643 ms" in out
    assert "RTF 0.31" in out and "dropped partials 2" in out
    assert "input overruns 2, dropped frames 1" in out
    assert capsys.readouterr().out == "", "the live view must leave stdout to the JSON Lines"


def test_emo_stream_mic_end_to_end(example_dialogue, tmp_path):
    """``emo-stream --mic`` on a real PortAudio device fed with the example dialogue; Ctrl-C ends it cleanly."""
    pulse.require()
    ref, _ = sf.read(example_dialogue.path, dtype="int16")
    with pulse.PulseMic(tmp_path / "pulse") as mic:
        cmd = [sys.executable, "-m", "emostream.stream.cli", "--mic", "--device", "pulse", "-v"]
        proc = subprocess.Popen(cmd, env=mic.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            log = []
            for line in proc.stderr:  # the device is open: what is spoken from now on is heard
                log.append(line)
                if "capturing from" in line:
                    break
            else:
                raise AssertionError("".join(log))
            mic.play(ref)
            time.sleep(1.5)  # the hangover after the last word, and the way through the daemon
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, "".join(log) + err
    events = [json.loads(line) for line in out.splitlines()]
    for e in events:
        validator(e["type"]).validate(e)
    finals = [e for e in events if e["type"] == "emotion"]
    assert abs(len(finals) - len(example_dialogue.turns)) <= 1
    assert all(e["stream_id"] == "mic" for e in events)
    # The file's timeline, shifted by when playback started: durations and gaps match the truth.
    offset = finals[0]["start_s"] - example_dialogue.turns[0].start_s
    for e, t in zip(finals, example_dialogue.turns, strict=False):
        assert abs(e["start_s"] - offset - t.start_s) <= 0.3 and abs(e["end_s"] - offset - t.end_s) <= 0.3
    assert jiwer.wer([normalise(t.text) for t in example_dialogue.turns],
                     [normalise(e["transcript"]) for e in finals]) <= 0.25
    assert [e for e in events if e["type"] == "partial"], "live speech gets partial transcripts"
    last_metrics = [e for e in events if e["type"] == "metrics"][-1]
    assert last_metrics["input_overruns"] == 0 and last_metrics["utterances"] == len(finals)
