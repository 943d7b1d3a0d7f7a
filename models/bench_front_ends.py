"""CPU time per utterance of the packaged front ends (acoustic features, text encoders), as a markdown table.

    python -m emostream.models.bench_front_ends [--audio FILE] [--seconds 3.5] [--repeats 7]

The audio is the first ``--seconds`` of ``--audio`` (default: the bundled example call, real speech); the text
is one 17-word sentence. Time is the median over ``--repeats`` calls after one warm-up call, one utterance per
call, torch and CTranslate2 on one CPU thread each, as the stream runs them. On a CPU with bfloat16 the PyTorch
blocks are timed in both precisions, and how far bfloat16 moves their states is printed below the table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch

from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.functionals import Functionals
from emostream.models.text_encoder import PACKAGED_ENCODERS, TextEncoder, TextEncoderSpec
from emostream.models.whisper_states import PRECISIONS, WHISPER_MODELS, Precision, native_bfloat16

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "call_center.flac"  # in a checkout
EARLY_GUESS_GAP = 1440  # samples the stream's last guess before the exact cut lacks (90 ms of the post-roll)
SENTENCE = "This is the third time I have called and my internet is still down, I am really furious!"


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: first calls allocate buffers once per process
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def live_end_ms(functionals: Functionals, audio: torch.Tensor, repeats: int) -> float:
    """Median ms from the exact cut to the functionals when the rest was fed while spoken, as the stream feeds them
    (stream/stages/functionals.py): the last 90 ms of audio and the statistics."""
    wave = audio.numpy()
    times = []
    for _ in range(repeats + 1):
        live = functionals.live()
        live.feed(wave[:-EARLY_GUESS_GAP])
        time.sleep(0.5)  # openSMILE works through it on its own thread, as while the speaker talks
        start = time.perf_counter()
        done = live.finish(wave)
        assert done is not None
        done.result()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", type=Path, default=EXAMPLE, help="a speech file (16 kHz)")
    parser.add_argument("--seconds", type=float, default=3.5, help="utterance length (default 3.5 s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per front end")
    args = parser.parse_args(argv)
    if not args.audio.is_file():
        parser.error(f"--audio: {args.audio} not found; give a 16 kHz speech file (the repository has "
                     "examples/call_center.flac)")
    torch.set_num_threads(1)
    audio, rate = sf.read(args.audio, dtype="float32", always_2d=True)
    if rate != 16000:
        parser.error(f"--audio: {args.audio} is {rate} Hz; give a 16 kHz file")
    wave = [torch.from_numpy(audio[: int(args.seconds * rate), 0].copy())]
    print(f"CPU ms per utterance, one thread; {args.seconds:g} s of {args.audio.name}; median of {args.repeats}.\n")
    print("| front end | output | ms per utterance |\n|---|---|---:|")
    specs: list[tuple[str, FeatureSpec, Precision]] = [("MFCC 40 + deltas (torchaudio)", FeatureSpec(), "float32")]
    specs += [(f"Whisper {name} encoder states, {window:g} s window", FeatureSpec(
        kind="whisper", whisper=name, whisper_window_s=window, hop_ms=20.0, deltas=False), "float32")
        for name in WHISPER_MODELS for window in (10.0, 4.0)]
    precisions: tuple[Precision, ...] = PRECISIONS if native_bfloat16(torch.device("cpu")) else ("float32",)
    specs += [(f"Whisper tiny.en states after block {block} (PyTorch, {precision}), 10 s window", FeatureSpec(
        kind="whisper", whisper_layer=block, hop_ms=20.0, deltas=False), precision)
        for block in (2, 4) for precision in precisions]
    for label, spec, precision in specs:
        try:
            extractor = make_extractor(spec, precision=precision)
        except RuntimeError as e:  # an optional model that is not installed
            print(f"| {label} | - | not installed: {e} |")
            continue
        ms = median_ms(lambda x=extractor: x(wave), args.repeats)
        print(f"| {label} | {spec.dim} per {spec.hop_ms:g} ms | {ms:.1f} |")
    try:
        functionals = Functionals("egemaps")
    except RuntimeError as e:
        print(f"| eGeMAPS v02 functionals (openSMILE) | - | not installed: {e} |")
    else:  # appended to the frames when a bundle asks for them (the default bundle does)
        ms = median_ms(lambda: functionals(wave), args.repeats)
        print(f"| eGeMAPS v02 functionals (openSMILE), the whole utterance | {functionals.dim} per utterance "
              f"| {ms:.1f} |")
        ms = live_end_ms(functionals, wave[0], args.repeats)
        print(f"| eGeMAPS v02 functionals, fed while spoken: left at the exact cut | {functionals.dim} per "
              f"utterance | {ms:.1f} |")
    for name in PACKAGED_ENCODERS:
        try:
            encoder = TextEncoder(TextEncoderSpec(name=name))
        except RuntimeError as e:
            print(f"| {name} sentence embedding | - | not installed: {e} |")
            continue
        ms = median_ms(lambda e=encoder: e.encode([SENTENCE]), args.repeats)
        print(f"| {name} sentence embedding | {encoder.spec.dim}-d | {ms:.1f} |")
    if len(precisions) > 1:  # what bfloat16 does to the default's features, beside what it saves
        block2 = FeatureSpec(kind="whisper", whisper_layer=2, hop_ms=20.0, deltas=False)
        exact, fast = (make_extractor(block2, precision=precision)(wave)[0] for precision in PRECISIONS)
        print(f"\nbfloat16 against float32, the states after block 2 of this audio: relative difference "
              f"{float((fast - exact).norm() / exact.norm()):.4f} (norm of the difference over the norm)")


if __name__ == "__main__":
    main()
