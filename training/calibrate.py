"""Calibrates a bundle: temperatures fitted on dev data and folded into its weights (training/temperature.py), so
the calibrated copy stays loadable by any emo-stream.

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

from emostream.models.baseline import FUSIONS, reference_tensor
from emostream.training.options import add_data_options
from emostream.training.temperature import calibrate_branches, calibrate_output, fit_text_reference

log = logging.getLogger(__name__)


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
    p.add_argument("--fusion", choices=FUSIONS, default=None,
                   help="late fusion only: product or mixture (sum) of the branches' probabilities, with fixed "
                        "weights or each scaled by its modality's confidence (models/blocks.py fuse_log_probs; "
                        "choose on dev with emostream.training.ablate_fusion)")
    p.add_argument("--text-reference", action=argparse.BooleanOptionalAction, default=True,
                   help="late fusion only: fit what the text branch says of emotionless words (MELD dev neutral "
                        "utterances) and fuse the text relative to it (default: on)")
    p.add_argument("--cross-corpus", type=Path, default=None, metavar="DIR",
                   help="the output folder of emostream.training.cross_corpus for this bundle's recipe: its table "
                        "goes into the model card")
    args = p.parse_args(argv)
    if args.cross_corpus and not (args.cross_corpus / "table.md").is_file():
        p.error(f"--cross-corpus: no table.md in {args.cross_corpus}; give the --out folder of "
                "emostream.training.cross_corpus")
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from emostream.models.bundle import load_bundle, save_bundle
    from emostream.stream.stages.vad import VadConfig
    from emostream.training.batching import dialogue_inputs, label_array
    from emostream.training.cache import audio_frames, text_features
    from emostream.training.data.meld import load_meld
    from emostream.training.data.ravdess import load_ravdess
    from emostream.training.data.registry import CORPORA
    from emostream.training.evaluate import evaluate
    from emostream.training.metrics import summary
    from emostream.training.model_card import calibration_note, model_card
    from emostream.training.paths import default_cache_dir, default_data_dir
    from emostream.training.speaker_frames import heard_frames

    data, cache = args.data or default_data_dir(), args.cache or default_cache_dir()
    bundle = load_bundle(args.bundle)
    meta, model = bundle.meta, bundle.model
    more = meta.data_card.get("corpora", {})  # further corpora the bundle learned from: calibrated on their dev too
    clips = load_ravdess(data, meta.data_card["ravdess"]["actors"]["dev"])
    clips += [u for n, c in more.items() if c["modality"] == "audio" for u in CORPORA[n].splits(data)["dev"]]
    frames = heard_frames(audio_frames([c.audio for c in clips], meta.features, VadConfig(**meta.data_card["vad"]),
                                       cache), clips, meta.speaker_norm)
    meld = load_meld(data, "dev")
    read = meld + [u for n, c in more.items() if c["modality"] == "text" for u in CORPORA[n].splits(data)["dev"]]
    sentences, tokens = text_features([u.text for u in read], meta.text_encoder, cache)
    audio_in = dialogue_inputs(clips, {}, meta.dims, audio=frames, use_text=False)
    text_in = dialogue_inputs(read, sentences, meta.dims, tokens=tokens)
    y_a, y_t = label_array(clips, meta.labels), label_array(read, meta.labels)
    if hasattr(model, "branch_logits"):
        temps: dict[str, float] = calibrate_branches(model, audio_in, y_a, text_in, y_t)
    else:
        temps = {"output": calibrate_output(model, audio_in + text_in, np.concatenate([y_a, y_t]))}
    log.info("temperatures fitted on dev: %s", temps)
    calibration: dict = {"temperatures": temps, "fitted_on": f"dev speakers of {', '.join(['ravdess', *more])} "
                                                              "(audio branch), dev splits of the text corpora "
                                                              "(text branch); negative log-likelihood, folded into "
                                                              "output layers"}
    hparams = meta.hparams
    if hasattr(model, "text_reference"):  # late fusion: fit a reference afresh, or fuse without one
        hparams = {k: v for k, v in hparams.items() if k != "text_reference"}
        model.text_reference = None
        if args.text_reference:  # MELD's neutral utterances: spoken dialogue, like what the stream transcribes
            meld_in = text_in[: len(meld)]
            reference = fit_text_reference(model, meld_in, y_t[: len(meld)], meta.labels.index("neutral"))
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
    if args.fusion is not None:
        if not hasattr(model, "fusion"):
            p.error("--fusion: needs a late-fusion bundle")
        model.fusion = args.fusion
        hparams = hparams | {"fusion": args.fusion}
        calibration["fusion"] = f"{args.fusion} (chosen on dev: training/ablate_fusion.py)"
    new_id = args.id or f"{meta.id}-calibrated"
    card = dict(meta.data_card, calibration=calibration)
    meta = replace(meta, id=new_id, hparams=hparams, data_card=card, scores={})
    save_bundle(args.out, model, meta, "")
    calibrated = load_bundle(args.out)
    reports = args.reports or Path("runs") / "eval" / new_id
    results = {}
    for corpus in ("meld", "ravdess", "pairs", *more):
        results.update(evaluate(calibrated, corpus, "test", data, cache, reports))
    meta.scores = {k: summary(v) for k, v in results.items()}
    original = (args.bundle / "MODEL_CARD.md").read_text()
    if hparams != bundle.meta.hparams and "audio_run" in bundle.meta.data_card["training"]:
        # The card names the fusion weight and reference: render it afresh with the new ones (and the original
        # scores).
        original = model_card(replace(bundle.meta, hparams=hparams), bundle.meta.scores)
    table = (args.cross_corpus / "table.md").read_text() if args.cross_corpus else ""
    save_bundle(args.out, model, meta, calibration_note(original, meta.id, temps, args.audio_weight, results,
                                                       hparams.get("text_reference"), args.fusion, table))
    print(f"calibrated bundle written to {args.out}: temperatures {temps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
