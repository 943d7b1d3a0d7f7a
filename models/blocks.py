"""Building blocks shared by the architectures."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``(B, T, D)`` where ``mask`` ``(B, T)`` is True; zeros where nothing is valid."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    mean = masked_mean(x, mask)
    return (((x - mean.unsqueeze(1)) ** 2 * m).sum(1) / m.sum(1).clamp(min=1.0)).clamp(min=1e-8).sqrt()


def mlp(dims: list[int], dropout: float) -> nn.Sequential:
    """Linear → GELU → dropout between every pair of sizes, plain linear at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def fuse_log_probs(
    audio_logits: torch.Tensor, text_logits: torch.Tensor, has_audio: torch.Tensor, has_text: torch.Tensor,
    audio_weight: float | torch.Tensor, text_reference: torch.Tensor | None = None, by_confidence: bool = False,
    mixture: bool = False,
) -> torch.Tensor:
    """Weighted product (or, with ``mixture``, sum) of experts over the modalities present; uniform when none is.

    A missing modality gets weight zero, so its (meaningless) logits cannot move the result. ``text_reference``
    (log-probabilities, ``(C,)``): what the text branch says of words that carry no emotion. Where audio is
    present, the text votes with its log-probabilities relative to that reference, so emotionless words leave the
    audio's decision where it was, instead of pulling it toward neutral; text alone is not changed by it.
    ``by_confidence``: each modality's weight is also scaled, per utterance, by its confidence (one minus its
    entropy over the entropy of a uniform guess), so that a voice unlike any the model heard, which it hears as
    a hesitant spread of classes, cannot outvote clear words; scaling the weights never moves the argmax of one
    modality alone, and emotionless words (near the reference) still add nothing.
    ``mixture``: the weighted mean of the probabilities (Kittler's sum rule) instead of the log-probabilities
    (the product rule). Under the product a class one modality all but rules out is vetoed whatever the other
    says, so a flat voice out of the model's domain (probability 0.04 of anger) silences "I am furious"; under
    the sum a class must be backed strongly by one modality, and one modality's estimation error costs less.
    Text relative to the reference is renormalised first, so emotionless words add the same to every class.
    Returns normalised log-probabilities.
    """
    wa = has_audio.to(audio_logits.dtype) * audio_weight
    wt = has_text.to(text_logits.dtype) * (1 - audio_weight)
    la = torch.log_softmax(audio_logits, dim=-1)
    lt = torch.log_softmax(text_logits, dim=-1)
    if by_confidence:
        wa, wt = wa * confidence(la), wt * confidence(lt)
    if text_reference is not None:
        lt = lt - has_audio.to(lt.dtype).unsqueeze(-1) * text_reference
    total = (wa + wt).clamp(min=1e-6).unsqueeze(-1)
    if mixture:
        mixed = (wa.unsqueeze(-1) * la.exp() + wt.unsqueeze(-1) * torch.softmax(lt, dim=-1)) / total
        return torch.log_softmax(mixed.clamp(min=1e-12).log(), dim=-1)  # uniform where no modality is present
    return torch.log_softmax((wa.unsqueeze(-1) * la + wt.unsqueeze(-1) * lt) / total, dim=-1)


def confidence(log_probs: torch.Tensor) -> torch.Tensor:
    """``1 - H(p) / log C`` per row: 1 for a certain prediction, 0 for a uniform one."""
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return (1 - entropy / math.log(log_probs.shape[-1])).clamp(min=0.0)


def present(x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, ...)`` where ``flag`` ``(B,)`` is True, exact zeros elsewhere (a missing modality's branch).

    ``torch.where`` rather than a product, so that not even a NaN or inf in a missing input can leak through.
    """
    return torch.where(flag.view(-1, *([1] * (x.dim() - 1))), x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the True entries of ``mask``; exact zeros where the mask is False (all zeros if none is)."""
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * mask.to(scores.dtype)


def pool_mask(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """The validity of the steps of a max/avg pooling with ``kernel`` = stride and ``ceil_mode=True``."""
    return nn.functional.max_pool1d(mask.unsqueeze(1).float(), kernel, kernel, ceil_mode=True).squeeze(1) > 0


def left_align(mask: torch.Tensor) -> torch.Tensor:
    """Gather indices ``(B, T)`` that move the valid steps of every row to the front, order kept.

    Right-aligned dialogue context (or any mask with holes) becomes a prefix, which is what recurrent and
    causal layers need to ignore padding exactly. No host sync: a stable sort on the device.
    """
    return torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices


def gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, t]]`` for ``(B, T, D)`` ``x``."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverses the first ``lengths[b]`` steps of each row of ``(B, T, D)`` and leaves the rest in place."""
    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t)
    return gather_steps(x, index)


class MaskedBiRNN(nn.Module):
    """Stacked bidirectional LSTM/GRU that ignores masked steps exactly, without packing.

    ``pack_padded_sequence`` needs the lengths on the host (a sync per call); instead each row is left-aligned,
    the backward direction reads its valid steps reversed in place, and outputs go back to their positions.
    Valid outputs are therefore independent of padding content and length. Output ``(B, T, 2 * hidden)``,
    zeros at masked steps.
    """

    def __init__(self, input_size: int, hidden: int, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.hidden = hidden
        self.forward_rnns = nn.ModuleList(
            rnn(input_size if i == 0 else 2 * hidden, hidden, batch_first=True) for i in range(num_layers))
        self.backward_rnns = nn.ModuleList(
            rnn(input_size if i == 0 else 2 * hidden, hidden, batch_first=True) for i in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        order = left_align(mask)
        valid = mask.gather(1, order)
        lengths = valid.sum(1)
        m = valid.unsqueeze(-1).to(x.dtype)
        h = gather_steps(x, order) * m
        for i, (fwd, bwd) in enumerate(zip(self.forward_rnns, self.backward_rnns, strict=True)):
            if i:
                h = self.dropout(h)
            f = fwd(h)[0]
            b = reverse_valid(bwd(reverse_valid(h, lengths))[0], lengths)
            h = torch.cat([f, b], dim=-1) * m
        return gather_steps(h, torch.argsort(order, dim=1))  # back to the original positions


def final_states(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summary of a :class:`MaskedBiRNN` output ``(B, T, 2H)``: the forward half at the last valid step and the
    backward half at the first, i.e. each direction after reading the whole sequence. ``(B, 2H)``."""
    half = out.shape[-1] // 2
    first = mask.to(torch.uint8).argmax(1)  # index of the first maximum, no host sync
    last = mask.shape[1] - 1 - mask.flip(1).to(torch.uint8).argmax(1)
    rows = torch.arange(out.shape[0], device=out.device)
    return torch.cat([out[rows, last, :half], out[rows, first, half:]], dim=-1)


class AttentionPool(nn.Module):
    """Additive attention pooling over time (``vᵀ tanh(W x)``), masked: ``(B, T, D)`` → ``(B, D)``.

    The "attention" of the attention-BLSTMs in seeds 000, 001 and 004.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden or dim)
        self.score = nn.Linear(hidden or dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = masked_softmax(self.score(torch.tanh(self.proj(x))).squeeze(-1), mask)
        return (weights.unsqueeze(-1) * x).sum(1)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018): a learned weight per frame, then the weighted mean and
    standard deviation, ``(B, T, D)`` → ``(B, 2D)``. Mean + std pooling where every frame weighs the same is its
    special case; here the frames that carry the emotion can weigh more."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = masked_softmax(self.score(torch.tanh(self.proj(x))).squeeze(-1), mask).unsqueeze(-1)
        mean = (w * x).sum(1)
        var = (w * (x - mean.unsqueeze(1)) ** 2).sum(1)
        return torch.cat([mean, var.clamp(min=1e-8).sqrt()], dim=-1)


class HeadEnsemble(nn.Module):
    """Heads of one shape, each trained on its own from its own seed (a deep ensemble); the output is the mean of
    their log-probabilities, so the ensemble's logits divided by a temperature are exactly its members' output
    layers divided by it (training/temperature.py folds it there). Within ``only(i)`` member i alone answers:
    training fits one member at a time."""

    def __init__(self, heads: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(heads)
        self.active: int | None = None

    @property
    def answering(self) -> nn.Module:
        """What answers now: the member of ``only(i)`` within its block, else the whole ensemble."""
        return self if self.active is None else self.members[self.active]

    @contextlib.contextmanager
    def only(self, i: int) -> Iterator[nn.Module]:
        """Member ``i`` answers for the ensemble until the block ends."""
        self.active = i
        try:
            yield self.members[i]
        finally:
            self.active = None

    def forward(self, *inputs: Any) -> torch.Tensor:
        if self.active is not None:
            return self.answering(*inputs)
        return torch.stack([m(*inputs).log_softmax(-1) for m in self.members]).mean(0)


class MaskedMultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention with a key mask, safe when a row has no valid key.

    Queries and keys may have any sizes (``q_dim``, ``kv_dim``); the output has ``q_dim`` features so that it
    can be added to the query as a residual. Rows with no valid key return zeros instead of NaN.
    """

    def __init__(self, q_dim: int, kv_dim: int, heads: int, head_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, head_dim, dropout
        self.q = nn.Linear(q_dim, heads * head_dim)
        self.kv = nn.Linear(kv_dim, 2 * heads * head_dim)
        self.out = nn.Linear(heads * head_dim, q_dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, tq, _ = query.shape
        q = self.q(query).view(b, tq, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(keys).view(b, keys.shape[1], 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device)
        bias = bias.masked_fill(~key_mask, torch.finfo(q.dtype).min)[:, None, None, :]
        ctx = nn.functional.scaled_dot_product_attention(
            q, k, v * key_mask[:, None, :, None].to(v.dtype), attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0)
        return present(self.out(ctx.transpose(1, 2).reshape(b, tq, -1)), key_mask.any(1))


def resample_steps(x: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Area-weighted resampling of the valid prefix of ``(B, T, D)`` to exactly ``steps`` steps.

    Step k averages the valid frames overlapping ``[k, k + 1) · length / steps`` (fractional overlaps
    weighted), so frames and tokens of any length map onto one common shape (seed 000's equal-shape stems).
    Rows with no valid step give zeros.
    """
    lengths = mask.sum(1, keepdim=True).to(x.dtype)  # (B, 1)
    k = torch.arange(steps, device=x.device, dtype=x.dtype)
    start = (k * lengths / steps).unsqueeze(-1)  # (B, K, 1)
    end = ((k + 1) * lengths / steps).unsqueeze(-1)
    t = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[None, None, :]
    overlap = (torch.minimum(t + 1, end) - torch.maximum(t, start)).clamp(min=0.0)
    overlap = overlap * mask.unsqueeze(1).to(x.dtype)
    weights = overlap / overlap.sum(-1, keepdim=True).clamp(min=1e-6)
    return weights @ x
