"""Parameter count and CPU inference time of every registered architecture, as a markdown table.

    python -m emostream.models.bench [--seconds 3] [--tokens 16] [--context 8] [--repeats 20] \
        [--variant late_fusion_baseline:audio_pool=attentive ...] [--bundle models/bundles/default ...]

Each architecture is built with its default hyper-parameters and its own default inputs (feature spec and
text level, :func:`emostream.models.zoo.default_inputs`). Inputs are synthetic but shaped like a real
utterance of ``--seconds`` seconds with ``--tokens`` tokens and a full context of ``--context`` utterances.
Time is per utterance: the median over ``--repeats`` calls of one batch, divided by the batch size, on one
CPU thread in inference mode; the last column is what a stream's event costs (its fused, audio and text scores,
``modality_logits``). Each ``--variant ARCH:KEY=VALUE[,KEY=VALUE]`` adds a row for the architecture with those
hyper-parameters (values read as YAML); each ``--bundle PATH`` a row for that bundle's model on its own inputs
(its frames, its context size, and its text encoder's tokens when it tunes encoder layers), as a stream serves it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from emostream.models.bundle import BundleError, load_bundle
from emostream.models.collate import PastUtterance, UtteranceInput, collate
from emostream.models.features import FeatureSpec
from emostream.models.interface import EmotionModel, ModelDims, architectures, build_model
from emostream.models.labels import LABELS
from emostream.models.text_encoder import TextEncoderSpec
from emostream.models.zoo import default_inputs


def time_per_utterance(model: EmotionModel, items: list[UtteranceInput], dims: ModelDims, repeats: int,
                       event: bool = False) -> float:
    """Median seconds per utterance of a forward pass over ``items`` as one batch; ``event``: of the three scores a
    stream's event carries (fused, audio alone, text alone: ``modality_logits``)."""
    batch = collate(items, dims)
    call = model.modality_logits if event else model
    with torch.inference_mode():
        for _ in range(2):  # warm-up
            call(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(batch)
            times.append(time.perf_counter() - start)
    return statistics.median(times) / len(items)


def parse_variant(text: str) -> tuple[str, dict]:
    """``ARCH:KEY=VALUE,KEY=VALUE`` as the architecture's name and its hyper-parameters."""
    name, _, pairs = text.partition(":")
    items = [pair.partition("=") for pair in pairs.split(",")] if pairs else []
    if name not in architectures() or not items or any(not k or not sep for k, sep, _ in items):
        known = ", ".join(sorted(architectures()))
        raise SystemExit(f"--variant {text!r}: write ARCH:KEY=VALUE[,KEY=VALUE] with ARCH one of {known}")
    try:
        return name, {k: yaml.safe_load(v) for k, _, v in items}
    except yaml.YAMLError as e:
        raise SystemExit(f"--variant {text!r}: a value is not valid YAML ({e})") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="utterance length (default 3 s)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per utterance for token-level text")
    parser.add_argument("--context", type=int, default=8, help="H, past utterances in the context")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per batch size (batch 16: a quarter)")
    parser.add_argument("--variant", action="append", default=[], metavar="ARCH:KEY=VALUE[,KEY=VALUE]",
                        help="also time ARCH with these hyper-parameters (repeatable)")
    parser.add_argument("--bundle", action="append", default=[], type=Path, metavar="PATH",
                        help="also time this bundle's model on its own inputs (repeatable)")
    args = parser.parse_args(argv)
    try:  # before any timing: a bad path fails at once
        bundles = [load_bundle(path, device="cpu") for path in args.bundle]
    except BundleError as e:
        raise SystemExit(str(e)) from None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"Per-utterance CPU inference, 1 thread, {args.seconds:g} s utterance, {args.tokens} tokens, "
          f"H = {args.context}; median over {args.repeats} (batch 1) / {max(3, args.repeats // 4)} (batch 16) calls.\n")
    print("| architecture | parameters | audio input | text input | ms/utt, batch 1 | ms/utt, batch 16 "
          "| ms/utt, an event's three scores, batch 1 |")
    print("|---|---:|---|---|---:|---:|---:|")
    rows = [(name, {}) for name in sorted(architectures())] + [parse_variant(v) for v in args.variant]
    for name, hparams in rows:
        spec, text_spec = default_inputs(name)
        dims = ModelDims(num_classes=len(LABELS), audio_dim=spec.dim, text_dim=text_spec.dim,
                         context_size=args.context)
        try:
            model = build_model(name, dims, hparams).eval()
        except (TypeError, ValueError) as e:  # a variant's unknown or bad hyper-parameter
            raise SystemExit(f"--variant {name}: cannot build it with {hparams}: {e}") from None
        label = name + "".join(f", {k}={v}" for k, v in hparams.items())
        print(row(label, model, spec, text_spec, args), flush=True)
    for bundle in bundles:
        meta = bundle.meta
        print(row(f"bundle {meta.id}", bundle.model, meta.features, meta.text_encoder, args), flush=True)


def row(label: str, model: EmotionModel, spec: FeatureSpec, text_spec: TextEncoderSpec,
        args: argparse.Namespace) -> str:
    """The table's row for ``model`` on synthetic inputs shaped by ``spec`` and ``text_spec``."""
    dims = model.dims
    frames = min(round(args.seconds * 1000 / spec.hop_ms) + 1, spec.max_frames)
    tokens = args.tokens if text_spec.level == "token" else 1
    context = tuple(PastUtterance(torch.randn(dims.text_dim), torch.rand(2 * dims.audio_dim), str(i % 2))
                    for i in range(dims.context_size))
    item = UtteranceInput(audio=torch.randn(frames, dims.audio_dim), sentence=torch.randn(dims.text_dim),
                          tokens=torch.randn(tokens, dims.text_dim), speaker="0", context=context)
    params = sum(p.numel() for p in model.parameters())
    one = time_per_utterance(model, [item], dims, args.repeats)
    sixteen = time_per_utterance(model, [item] * 16, dims, max(3, args.repeats // 4))
    event = time_per_utterance(model, [item], dims, args.repeats, event=True)
    audio = f"{spec.kind} {spec.dim}-d, {frames} frames"
    text = f"{text_spec.level} ({tokens})" if text_spec.level == "token" else "sentence + context"
    return (f"| `{label}` | {params:,} | {audio} | {text} | {one * 1e3:.2f} | {sixteen * 1e3:.2f} "
            f"| {event * 1e3:.2f} |")


if __name__ == "__main__":
    main()
