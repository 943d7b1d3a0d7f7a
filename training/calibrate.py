"""Temperature calibration, folded into the weights: a bundle stays loadable by any emo-stream.

Dividing logits by T is the same as dividing the weight and bias of the output layer by T, so no
architecture needs a new buffer. The late-fusion baseline gets one temperature per branch (fitted on its own
dev data): its fusion averages log-probabilities, so an overconfident branch outvotes the other; calibrated,
each branch speaks with the confidence its dev data earns. Single-head architectures get one temperature.

    python -m emostream.training.calibrate --bundle models/bundles/default --out /tmp/calibrated

(with ``PYTHONPATH=.dev`` in a checkout) writes a calibrated copy and scores it like ``emo-eval``.
A late-fusion bundle also gets a text reference (``--no-text-reference``: none): what its calibrated text branch
says of neutral MELD dev utterances, relative to which the fused model hears the text (models/blocks.py
``fuse_log_probs``). ``--audio-weight W`` also sets a late-fusion bundle's fusion weight (choose it on dev with
``emostream.training.ablate_fusion``: calibration changes how the branches' confidences compare).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.baseline import reference_tensor
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import EmotionModel
from emostream.training.cli import add_data_options

log = logging.getLogger(__name__)
GRID = torch.exp(torch.linspace(np.log(0.05), np.log(50.0), 600))


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The T minimising the mean negative log-likelihood of ``softmax(logits / T)`` (grid over 0.05..50)."""
    nll = torch.stack([F.cross_entropy(logits / t, y) for t in GRID])
    return float(GRID[int(nll.argmin())])


def output_layer(module: nn.Module, num_classes: int) -> nn.Linear:
    """The last registered ``nn.Linear`` with ``num_classes`` outputs: the layer that emits the logits."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not layers:
        raise ValueError(f"{type(module).__name__} has no linear layer with {num_classes} outputs")
    return layers[-1]


@torch.no_grad()
def fold_temperature(layer: nn.Linear, t: float) -> None:
    layer.weight.div_(t)
    if layer.bias is not None:
        layer.bias.div_(t)


@torch.no_grad()
def raw_logits(model: EmotionModel, inputs: list[UtteranceInput], branch: str | None = None,
               batch_size: int = 256) -> torch.Tensor:
    """Model output (or one branch's logits for a model with ``branch_logits``) in eval mode."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(inputs), batch_size):
        batch = collate(inputs[i : i + batch_size], model.dims)
        if branch is None:
            out.append(model(batch))
        else:
            audio, text = model.branch_logits(batch)  # type: ignore[operator]
            out.append(audio if branch == "audio" else text)
    model.train(was)
    return torch.cat(out)


def calibrate_branches(model: EmotionModel, audio_dev: list[UtteranceInput], y_audio: np.ndarray,
                       text_dev: list[UtteranceInput], y_text: np.ndarray) -> dict[str, float]:
    """Per-branch temperatures of a late-fusion model (``audio_head`` / ``text_head``), folded into its heads."""
    temps = {}
    for branch, inputs, y in (("audio", audio_dev, y_audio), ("text", text_dev, y_text)):
        t = fit_temperature(raw_logits(model, inputs, branch), torch.from_numpy(y))
        fold_temperature(output_layer(getattr(model, f"{branch}_head"), model.dims.num_classes), t)
        temps[branch] = round(t, 4)
    return temps


def calibrate_output(model: EmotionModel, dev: list[UtteranceInput], y: np.ndarray) -> float:
    """One temperature for a single-head model, fitted on ``dev`` and folded into its output layer."""
    t = fit_temperature(raw_logits(model, dev), torch.from_numpy(y))
    fold_temperature(output_layer(model, model.dims.num_classes), t)
    return round(t, 4)


@torch.no_grad()
def fit_text_reference(model: EmotionModel, text_dev: list[UtteranceInput], y_text: np.ndarray,
                       neutral: int) -> list[float]:
    """What the (calibrated) text branch says of words that carry no emotion: the log of its mean probabilities
    over the dev utterances labelled neutral. A late-fusion model votes its text relative to this
    (``fuse_log_probs``), so emotionless words leave the audio's decision alone."""
    idx = np.flatnonzero(y_text == neutral)
    if not len(idx):
        raise ValueError("no neutral dev utterance to fit the text reference on")
    probs = torch.softmax(raw_logits(model, [text_dev[i] for i in idx], "text"), dim=-1).mean(0)
    return [round(float(x), 4) for x in probs.log()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="where the calibrated bundle goes")
    p.add_argument("--id", default=None, help="bundle id of the copy (default: <id>-calibrated)")
    add_data_options(p)
    p.add_argument("--reports", type=Path, default=None, help="default runs/eval/<new id>/")
    p.add_argument("--audio-weight", type=float, default=None,
                   help="late fusion only: the audio branch's weight in [0, 1] after calibration")
    p.add_argument("--text-reference", action=argparse.BooleanOptionalAction, default=True,
                   help="late fusion only: fit what the text branch says of emotionless words (MELD dev neutral "
                        "utterances) and fuse the text relative to it (default: on)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from emostream.models.bundle import load_bundle, save_bundle
    from emostream.stream.stages.vad import VadConfig
    from emostream.training.batching import dialogue_inputs, label_array
    from emostream.training.cache import audio_frames, text_features
    from emostream.training.card import calibration_note, model_card
    from emostream.training.data.meld import load_meld
    from emostream.training.data.ravdess import load_ravdess
    from emostream.training.evaluate import evaluate
    from emostream.training.metrics import summary
    from emostream.training.paths import default_cache_dir, default_data_dir
    from emostream.training.speaker_frames import heard_frames

    data, cache = args.data or default_data_dir(), args.cache or default_cache_dir()
    bundle = load_bundle(args.bundle)
    meta, model = bundle.meta, bundle.model
    clips = load_ravdess(data, meta.data_card["ravdess"]["actors"]["dev"])
    frames = heard_frames(audio_frames([c.audio for c in clips], meta.features, VadConfig(**meta.data_card["vad"]),
                                       cache), clips, meta.speaker_norm)
    meld = load_meld(data, "dev")
    sentences, tokens = text_features([u.text for u in meld], meta.text_encoder, cache)
    audio_in = dialogue_inputs(clips, {}, meta.dims, audio=frames, use_text=False)
    text_in = dialogue_inputs(meld, sentences, meta.dims, tokens=tokens)
    y_a, y_t = label_array(clips, meta.labels), label_array(meld, meta.labels)
    if hasattr(model, "branch_logits"):
        temps: dict[str, float] = calibrate_branches(model, audio_in, y_a, text_in, y_t)
    else:
        temps = {"output": calibrate_output(model, audio_in + text_in, np.concatenate([y_a, y_t]))}
    log.info("temperatures fitted on dev: %s", temps)
    calibration: dict = {"temperatures": temps, "fitted_on": "RAVDESS dev actors (audio), MELD dev (text); "
                                                              "negative log-likelihood, folded into output layers"}
    hparams = meta.hparams
    if hasattr(model, "text_reference"):  # late fusion: fit a reference afresh, or fuse without one
        hparams = {k: v for k, v in hparams.items() if k != "text_reference"}
        model.text_reference = None
        if args.text_reference:
            reference = fit_text_reference(model, text_in, y_t, meta.labels.index("neutral"))
            model.text_reference = reference_tensor(reference, model.dims.num_classes)
            hparams |= {"text_reference": reference}
            calibration["text_reference"] = ("log of the text branch's mean probabilities on MELD dev neutral "
                                             "utterances, after its temperature; fused text votes relative to it")
    if args.audio_weight is not None:
        if not hasattr(model, "audio_weight") or not 0 <= args.audio_weight <= 1:
            p.error("--audio-weight: needs a late-fusion bundle and a weight in [0, 1]")
        model.audio_weight = args.audio_weight
        hparams = hparams | {"audio_weight": args.audio_weight}
        calibration["audio_weight"] = f"{args.audio_weight} (chosen on dev fused UA: training/ablate_fusion.py)"
    new_id = args.id or f"{meta.id}-calibrated"
    card = dict(meta.data_card, calibration=calibration)
    meta = replace(meta, id=new_id, hparams=hparams, data_card=card, scores={})
    save_bundle(args.out, model, meta, "")
    calibrated = load_bundle(args.out)
    reports = args.reports or Path("runs") / "eval" / new_id
    results = {}
    for corpus in ("meld", "ravdess", "pairs"):
        results.update(evaluate(calibrated, corpus, "test", data, cache, reports))
    meta.scores = {k: summary(v) for k, v in results.items()}
    original = (args.bundle / "MODEL_CARD.md").read_text()
    if hparams != bundle.meta.hparams and "audio_run" in bundle.meta.data_card["training"]:
        # The card names the fusion weight and reference: render it afresh with the new ones (and the original
        # scores).
        original = model_card(replace(bundle.meta, hparams=hparams), bundle.meta.scores)
    save_bundle(args.out, model, meta, calibration_note(original, meta.id, temps, args.audio_weight, results,
                                                       hparams.get("text_reference")))
    print(f"calibrated bundle written to {args.out}: temperatures {temps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
