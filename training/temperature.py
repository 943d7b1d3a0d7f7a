"""Temperature calibration, folded into the weights: a bundle stays loadable by any emo-stream.

Dividing logits by T is the same as dividing the weight and bias of the output layer by T, so no
architecture needs a new buffer. The late-fusion baseline gets one temperature per branch (fitted on its own
dev data): its fusion averages log-probabilities, so an overconfident branch outvotes the other; calibrated,
each branch speaks with the confidence its dev data earns. Single-head architectures get one temperature.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import EmotionModel

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
        head = getattr(model, f"{branch}_head")
        for part in getattr(head, "members", [head]):  # an ensemble's logits scale with every member's
            fold_temperature(output_layer(part, model.dims.num_classes), t)
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
