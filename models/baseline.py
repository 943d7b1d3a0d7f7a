"""Tracer baseline: an acoustic classifier and a text-with-context classifier, fused late.

Audio: mean and standard deviation of corpus-normalised frames (MFCC, Whisper states, ...; standardised per
speaker before they arrive when the bundle has a speaker prior) → MLP.
Text: the utterance's sentence vector (the frozen encoder's, or with ``text_layers`` from the encoder's top layers
tuned with this branch, models/text_top.py) with the pooled frozen embeddings of the H past utterances of the
same and of other speakers, and of the last one → MLP.
Each branch is trained on its own corpus (RAVDESS, MELD); the bundle fuses their log-probabilities, the text's
relative to ``text_reference`` when calibration fitted one (what the text branch says of emotionless words).
"""

from __future__ import annotations

import torch

from emostream.models.blocks import fuse_log_probs, masked_mean, masked_std, mlp
from emostream.models.features import InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register
from emostream.models.text_top import TunedTop

# How the branches' votes combine (models/blocks.py fuse_log_probs): the product of their probabilities with fixed
# weights or with each weight scaled by the modality's confidence, or the weighted sum (mixture) of the same two.
FUSIONS = ("fixed", "confidence", "mixture", "mixture_confidence")


@register
class LateFusionBaseline(EmotionModel):
    architecture = "late_fusion_baseline"

    def __init__(self, dims: ModelDims, hidden: int = 256, dropout: float = 0.3, audio_weight: float = 0.5,
                 text_layers: int = 0, text_encoder: str = "all-MiniLM-L6-v2",
                 text_reference: list[float] | None = None, fusion: str = "fixed") -> None:
        super().__init__(dims, hidden=hidden, dropout=dropout, audio_weight=audio_weight, text_layers=text_layers,
                         text_encoder=text_encoder, text_reference=text_reference, fusion=fusion)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        self.audio_weight = audio_weight
        self.fusion = fusion
        # A buffer, so that it moves with the model to its device; not persistent: the bundle keeps it in hparams.
        ref = None if text_reference is None else reference_tensor(text_reference, dims.num_classes)
        self.register_buffer("text_reference", ref, persistent=False)
        self.norm = InputNorm(dims.audio_dim)
        self.audio_head = mlp([2 * dims.audio_dim, hidden, hidden, dims.num_classes], dropout)
        self.text_head = mlp([4 * dims.text_dim, hidden, dims.num_classes], dropout)
        # text_layers > 0: the utterance's own sentence vector comes from the encoder's top layers, tuned with the
        # text branch, run on the token states the encoder hands over (models/text_top.py); context stays frozen.
        self.text_top = TunedTop(text_encoder, text_layers) if text_layers else None

    @staticmethod
    def summarise(frames: torch.Tensor) -> torch.Tensor:
        """Two frames ``(2, D)`` with the same mean and (population) standard deviation per feature as ``frames``
        ``(T, D)``: all that the audio branch reads of an utterance, since its input norm is affine per feature. It
        lets training on thousands of clips move two frames per clip instead of hundreds (same outputs)."""
        mean, std = frames.mean(0), frames.std(0, correction=0)
        return torch.stack([mean + std, mean - std])

    def branch_logits(self, batch: EmotionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the audio and the text branch, before fusion (what each branch is trained on)."""
        frames = self.norm(batch.audio, batch.audio_mask)
        audio = self.audio_head(
            torch.cat([masked_mean(frames, batch.audio_mask), masked_std(frames, batch.audio_mask)], dim=-1)
        )
        ctx, valid, same = batch.context, batch.context_mask, batch.context_same_speaker
        last = torch.zeros_like(batch.sentence)
        if ctx.shape[1]:
            last = ctx[:, -1] * valid[:, -1:].to(ctx.dtype)
        current = batch.sentence
        if self.text_top is not None and bool(batch.has_text.any()):  # audio-only batches skip it (and its dropout)
            current = self.text_top(batch.text, batch.text_mask)
        text = self.text_head(
            torch.cat([current, masked_mean(ctx, valid & same), masked_mean(ctx, valid & ~same), last], dim=-1)
        )
        return audio, text

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio, text = self.branch_logits(batch)
        return fuse(audio, text, batch.has_audio, batch.has_text, self.audio_weight, self.text_reference, self.fusion)


def fuse(audio: torch.Tensor, text: torch.Tensor, has_audio: torch.Tensor, has_text: torch.Tensor,
         audio_weight: float, text_reference: torch.Tensor | None, fusion: str) -> torch.Tensor:
    """The branches' logits fused by one of ``FUSIONS`` (models/blocks.py ``fuse_log_probs``)."""
    return fuse_log_probs(audio, text, has_audio, has_text, audio_weight, text_reference,
                          by_confidence=fusion.endswith("confidence"), mixture=fusion.startswith("mixture"))


def reference_tensor(values: list[float], num_classes: int) -> torch.Tensor:
    """The ``text_reference`` hparam as a tensor: one finite log-probability per class."""
    ref = torch.tensor(values, dtype=torch.float32)
    if ref.shape != (num_classes,) or not bool(torch.isfinite(ref).all()):
        raise ValueError(f"text_reference: needs {num_classes} finite log-probabilities, got {values!r}")
    return ref
