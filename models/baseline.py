"""Tracer baseline: an acoustic classifier and a text-with-context classifier, fused late.

Audio: mean and standard deviation of corpus-normalised frames (MFCC, Whisper states, ...; standardised per
speaker before they arrive when the bundle has a speaker prior) → MLP; or (``audio_pool``) the same statistics
weighted by a learned attention per frame, optionally after two small transformer layers; with ``audio_members``
> 1 a deep ensemble of such MLPs (models/blocks.py ``HeadEnsemble``), each trained from its own seed.
Text: the utterance's sentence vector (the frozen encoder's, or with ``text_layers`` from the encoder's top layers
tuned with this branch, models/text_top.py) with the pooled frozen embeddings of the H past utterances of the
same and of other speakers, and of the last one → MLP; with ``text_members`` > 1 a deep ensemble of such branches,
each with its own tuned layers and MLP, each trained from its own seed.
Each branch is trained on its own corpus (RAVDESS, MELD); the bundle fuses their log-probabilities, the text's
relative to ``text_reference`` when calibration fitted one (what the text branch says of emotionless words).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from emostream.models.blocks import AttentiveStatsPool, HeadEnsemble, fuse_log_probs, masked_mean, masked_std, mlp
from emostream.models.features import InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register
from emostream.models.text_top import TunedTop

# How the branches' votes combine (models/blocks.py fuse_log_probs): the product of their probabilities with fixed
# weights or with each weight scaled by the modality's confidence, or the weighted sum (mixture) of the same two.
FUSIONS = ("fixed", "confidence", "mixture", "mixture_confidence")
# How the audio branch reads an utterance's frames before its MLP (hparam ``audio_pool``), as the model card says it.
# "stats" was chosen on the leave-one-corpus-out dev figures (docs/cross_corpus.md, "The classifier on top").
AUDIO_POOLS = {
    "stats": "mean and standard deviation",
    "attentive": "attention-weighted mean and standard deviation (attentive statistics pooling)",
    "transformer": "attention-weighted mean and standard deviation, after two small transformer layers",
}
# Hparams only the audio branch reads: the text branch's training does not depend on them (training/train.py).
AUDIO_HPARAMS = ("audio_pool", "pool_width", "audio_members")
# Hparams only the text branch reads: the audio branch's training does not depend on them (training/train.py).
TEXT_HPARAMS = ("text_members",)


@register
class LateFusionBaseline(EmotionModel):
    architecture = "late_fusion_baseline"

    def __init__(self, dims: ModelDims, hidden: int = 256, dropout: float = 0.3, audio_weight: float = 0.5,
                 text_layers: int = 0, text_encoder: str = "all-MiniLM-L6-v2",
                 text_reference: list[float] | None = None, fusion: str = "fixed", audio_pool: str = "stats",
                 pool_width: int = 128, audio_members: int = 1, text_members: int = 1) -> None:
        super().__init__(dims, hidden=hidden, dropout=dropout, audio_weight=audio_weight, text_layers=text_layers,
                         text_encoder=text_encoder, text_reference=text_reference, fusion=fusion,
                         audio_pool=audio_pool, pool_width=pool_width, audio_members=audio_members,
                         text_members=text_members)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        if audio_pool not in AUDIO_POOLS:
            raise ValueError(f"audio_pool must be one of {', '.join(AUDIO_POOLS)}, not {audio_pool!r}")
        if audio_members < 1 or (audio_members > 1 and audio_pool != "stats"):
            raise ValueError(f"audio_members must be >= 1, and 1 with a learned audio_pool (one pooling is trained "
                             f"with one head), not {audio_members!r} with {audio_pool!r}")
        if text_members < 1:
            raise ValueError(f"text_members must be >= 1, not {text_members!r}")
        self.audio_weight = audio_weight
        self.fusion = fusion
        # A buffer, so that it moves with the model to its device; not persistent: the bundle keeps it in hparams.
        ref = None if text_reference is None else reference_tensor(text_reference, dims.num_classes)
        self.register_buffer("text_reference", ref, persistent=False)
        self.norm = InputNorm(dims.audio_dim)
        # None: plain mean + std, which training can summarise as two frames per clip (summarise); else learned.
        self.frame_pool = None if audio_pool == "stats" else FramePool(dims.audio_dim, audio_pool, pool_width, dropout)
        pooled = 2 * (pool_width if audio_pool == "transformer" else dims.audio_dim)
        self.audio_head = mlp([pooled, hidden, hidden, dims.num_classes], dropout)
        if audio_members > 1:
            # The other members are drawn aside from the global generator, so that the text head below starts from
            # the same weights however many members there are; training draws each member afresh from its seed.
            with torch.random.fork_rng(devices=[]):
                rest = [mlp([pooled, hidden, hidden, dims.num_classes], dropout) for _ in range(audio_members - 1)]
            self.audio_head = HeadEnsemble([self.audio_head, *rest])
        self.text_head: nn.Module = TextBranch(dims, hidden, dropout, text_encoder, text_layers)
        if text_members > 1:  # as for the audio members: the first member starts as the single branch would
            with torch.random.fork_rng(devices=[]):
                rest = [TextBranch(dims, hidden, dropout, text_encoder, text_layers) for _ in range(text_members - 1)]
            self.text_head = HeadEnsemble([self.text_head, *rest])

    def upgrade_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved before the text branch was one module (bundles up to v9: ``text_head.<i>`` its MLP,
        ``text_top`` its tuned layers) renamed to today's layout."""
        if not any(k.startswith("text_top.") or re.match(r"text_head\.\d", k) for k in state):
            return state
        return {re.sub(r"^text_top\.", "text_head.top.", re.sub(r"^text_head\.(\d)", r"text_head.mlp.\1", k)): v
                for k, v in state.items()}

    @staticmethod
    def summarise(frames: torch.Tensor) -> torch.Tensor:
        """Two frames ``(2, D)`` with the same mean and (population) standard deviation per feature as ``frames``
        ``(T, D)``: all that the audio branch reads of an utterance, since its input norm is affine per feature. It
        lets training on thousands of clips move two frames per clip instead of hundreds (same outputs)."""
        mean, std = frames.mean(0), frames.std(0, correction=0)
        return torch.stack([mean + std, mean - std])

    def branch_logits(self, batch: EmotionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the audio and the text branch, before fusion (what each branch is trained on)."""
        frames, mask = self.norm(batch.audio, batch.audio_mask), batch.audio_mask
        if self.frame_pool is None:
            audio = self.audio_head(torch.cat([masked_mean(frames, mask), masked_std(frames, mask)], dim=-1))
        else:
            audio = self.audio_head(self.frame_pool(frames, mask))
        ctx, valid, same = batch.context, batch.context_mask, batch.context_same_speaker
        last = torch.zeros_like(batch.sentence)
        if ctx.shape[1]:
            last = ctx[:, -1] * valid[:, -1:].to(ctx.dtype)
        context = torch.cat([masked_mean(ctx, valid & same), masked_mean(ctx, valid & ~same), last], dim=-1)
        tokens = (batch.text, batch.text_mask) if bool(batch.has_text.any()) else None  # audio-only: no tuned pass
        return audio, self.text_head(batch.sentence, tokens, context)

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio, text = self.branch_logits(batch)
        return fuse(audio, text, batch.has_audio, batch.has_text, self.audio_weight, self.text_reference, self.fusion)

    def modality_logits(self, batch: EmotionBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All three from one pass of the branches: switching a modality off changes only the fusion (a branch
        does not read the other's mask), so the per-modality scores of a stream's event cost no second pass of
        the text encoder's tuned layers."""
        audio, text = self.branch_logits(batch)
        has_audio, has_text = batch.has_audio, batch.has_text
        fused = fuse(audio, text, has_audio, has_text, self.audio_weight, self.text_reference, self.fusion)
        both = (has_audio & has_text).unsqueeze(1)
        alone = [fuse(audio, text, has_audio & keep_audio, has_text & ~keep_audio, self.audio_weight,
                      self.text_reference, self.fusion) for keep_audio in (True, False)]
        audio_alone, text_alone = (torch.where(both, one, fused) for one in alone)
        return fused, audio_alone, text_alone


class TextBranch(nn.Module):
    """One text branch: the utterance's sentence vector (from ``top``, the encoder's tuned top layers, when the
    model has them and the batch has tokens; else the frozen one) beside the pooled context → MLP → logits."""

    def __init__(self, dims: ModelDims, hidden: int, dropout: float, encoder: str, layers: int) -> None:
        super().__init__()
        self.mlp = mlp([4 * dims.text_dim, hidden, dims.num_classes], dropout)
        # layers > 0: the sentence vector comes from the encoder's top layers, tuned with the branch, run on the
        # token states the encoder hands over (models/text_top.py); the context stays frozen.
        self.top = TunedTop(encoder, layers) if layers else None

    def forward(self, sentence: torch.Tensor, tokens: tuple[torch.Tensor, torch.Tensor] | None,
                context: torch.Tensor) -> torch.Tensor:
        if self.top is not None and tokens is not None:
            sentence = self.top(*tokens)
        return self.mlp(torch.cat([sentence, context], dim=-1))


class FramePool(nn.Module):
    """A learned reading of an utterance's frames ``(B, T, D)`` → ``(B, 2D')``: attentive statistics pooling, for
    ``kind`` "transformer" after a projection to ``width`` and two pre-norm transformer layers (4 heads, no position
    encoding: the statistics the MLP reads do not depend on frame order, and the layers let each frame see the
    rest of the utterance)."""

    def __init__(self, dim: int, kind: str, width: int, dropout: float) -> None:
        super().__init__()
        self.encoder: nn.Module | None = None
        if kind == "transformer":
            layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout, batch_first=True, norm_first=True)
            self.proj = nn.Linear(dim, width)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            dim = width
        self.pool = AttentiveStatsPool(dim)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            # A row without frames (no audio) attends to its padding rather than to nothing, which would be NaN.
            safe = mask | ~mask.any(1, keepdim=True)
            frames = self.encoder(self.proj(frames), src_key_padding_mask=~safe)
        return self.pool(frames, mask)


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
