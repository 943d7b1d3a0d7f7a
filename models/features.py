"""Acoustic feature windows (torchaudio): the one implementation shared by training and streaming.

A bundle stores its :class:`FeatureSpec`; the stream builds its extractor from that spec, so a model
always sees the features it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torchaudio

from emostream.models.functionals import FUNCTIONAL_SETS, Functionals, WithFunctionals
from emostream.models.whisper_states import MAX_WINDOW_S, WHISPER_MODELS, Precision, WhisperStates

FeatureKind = Literal["mfcc", "mel", "lld", "whisper"]
LLD_DIM = 34  # low-level descriptors per frame of kind "lld" (see LowLevelDescriptors)
WHISPER_HOP_MS = 20.0  # Whisper's encoder states are 20 ms apart


@dataclass(frozen=True)
class FeatureSpec:
    """What the acoustic front end computes. Frames are ``hop_ms`` apart; at most ``max_frames`` are kept.

    ``kind``: "mfcc" (``n_mfcc`` coefficients), "mel" (``n_mels`` log-mel bands), "lld" (34 low-level
    descriptors per frame, see :class:`LowLevelDescriptors`; it uses ``n_mels`` for its 13 MFCCs and ignores
    ``n_mfcc``) or "whisper" (the encoder states of Whisper model ``whisper``, 20 ms apart, of audio padded
    to ``whisper_window_s``; see ``models/whisper_states.py``; it needs ``hop_ms: 20`` and ``deltas: false``
    and ignores the mel settings).
    ``deltas`` appends first and second differences to the first three kinds.
    ``whisper_layer``: 0 for the encoder's output (what the ASR decodes from, so the stream can share its pass),
    k for the states after encoder block k (``models/whisper_layers.py``; block 2 of tiny.en's 4 carries emotion
    across corpora better than the output).
    ``functionals``: "" (none) or "egemaps", the utterance's 88 eGeMAPS functionals appended to every frame
    (``models/functionals.py``).
    """

    kind: FeatureKind = "mfcc"
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: bool = True
    max_frames: int = 1000
    whisper: str = "tiny.en"
    whisper_window_s: float = 10.0
    whisper_layer: int = 0
    functionals: str = ""

    @property
    def dim(self) -> int:
        extra = FUNCTIONAL_SETS[self.functionals] if self.functionals else 0
        if self.kind == "whisper":
            return WHISPER_MODELS[self.whisper].dim + extra
        base = {"mfcc": self.n_mfcc, "mel": self.n_mels, "lld": LLD_DIM}[self.kind]
        return base * (3 if self.deltas else 1) + extra

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"feature spec has unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
        spec = cls(**data)
        if spec.kind not in ("mfcc", "mel", "lld", "whisper"):
            raise ValueError(f"feature spec kind {spec.kind!r} is not supported; use 'mfcc', 'mel', 'lld' or 'whisper'")
        if spec.whisper not in WHISPER_MODELS:
            raise ValueError(f"feature spec whisper {spec.whisper!r} is not packaged; "
                             f"known: {', '.join(WHISPER_MODELS)}")
        if not 0 <= spec.whisper_layer <= WHISPER_MODELS[spec.whisper].blocks:
            raise ValueError(f"feature spec whisper_layer {spec.whisper_layer} is not a block of {spec.whisper!r}: "
                             f"use 0 (the encoder's output) to {WHISPER_MODELS[spec.whisper].blocks}")
        if not 1.0 <= spec.whisper_window_s <= MAX_WINDOW_S:
            raise ValueError(f"feature spec whisper_window_s {spec.whisper_window_s:g} "
                             f"must be in [1, {MAX_WINDOW_S:g}]")
        if spec.kind == "whisper" and (spec.deltas or spec.hop_ms != WHISPER_HOP_MS):
            raise ValueError("feature spec kind 'whisper' has the encoder's own frames, 20 ms apart, no deltas: "
                             f"set hop_ms: {WHISPER_HOP_MS:g} and deltas: false (got hop_ms {spec.hop_ms:g}, "
                             f"deltas {str(spec.deltas).lower()})")
        if spec.functionals and spec.functionals not in FUNCTIONAL_SETS:
            raise ValueError(f"feature spec functionals {spec.functionals!r} is not supported; "
                             f"use '' or one of {', '.join(FUNCTIONAL_SETS)}")
        if spec.sample_rate != 16000:
            raise ValueError(f"feature spec sample_rate {spec.sample_rate} is not supported; use 16000")
        return spec


Extractor = Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]


def make_extractor(spec: FeatureSpec, device: torch.device | str = "cpu", threads: int = 1,
                   with_functionals: bool = True, precision: Precision = "float32") -> Extractor:
    """The front end a spec names, on ``device``: waveforms → ``(B, T, dim)`` frames and a ``(B, T)`` mask.
    ``threads`` is for the Whisper encoder (CTranslate2 keeps its own pool; torch's is set by the caller);
    ``precision`` for Whisper's inner blocks in PyTorch (``WhisperStates``).
    ``with_functionals`` False leaves the spec's functionals out (a live stream appends them itself, as the
    utterance is spoken: stream/stages/functionals.py)."""
    frames: Extractor
    if spec.kind == "whisper":
        frames = WhisperStates(spec.whisper, spec.whisper_window_s, spec.max_frames, device, threads,
                               spec.whisper_layer, precision)
    else:
        frames = FeatureExtractor(spec).to(device)
    return WithFunctionals(frames, Functionals(spec.functionals)) if spec.functionals and with_functionals else frames


class FeatureExtractor(torch.nn.Module):
    """Waveforms (16 kHz float in [-1, 1]) → feature frames, batched.

    Frames are not normalised per utterance: level and spread carry emotion. Models normalise with
    corpus statistics (:class:`InputNorm`) stored in their weights. It is a module so that it moves
    to the GPU with ``.to(device)`` and extracts there.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        n_fft = 1 << (round(spec.sample_rate * spec.win_ms / 1000) - 1).bit_length()
        mel = {
            "n_fft": n_fft,
            "win_length": round(spec.sample_rate * spec.win_ms / 1000),
            "hop_length": spec.hop_length,
            "n_mels": spec.n_mels,
        }
        if spec.kind == "mfcc":
            self.transform: torch.nn.Module = torchaudio.transforms.MFCC(
                sample_rate=spec.sample_rate, n_mfcc=spec.n_mfcc, melkwargs=mel
            )
        elif spec.kind == "lld":
            self.transform = LowLevelDescriptors(spec)
        else:
            self.transform = torch.nn.Sequential(
                torchaudio.transforms.MelSpectrogram(sample_rate=spec.sample_rate, **mel),
                torchaudio.transforms.AmplitudeToDB(top_db=80.0),
            )

    @torch.inference_mode()
    def forward(self, waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns features ``(B, T, dim)`` and a validity mask ``(B, T)``."""
        device = next(iter(self.transform.buffers())).device
        lengths = [min(len(w) // self.spec.hop_length + 1, self.spec.max_frames) for w in waveforms]
        longest = max(len(w) for w in waveforms)
        padded = torch.zeros(len(waveforms), longest, device=device)
        for i, w in enumerate(waveforms):
            padded[i, : len(w)] = w.to(device)
        # mfcc/mel get one "channel" per item, so that AmplitudeToDB's top_db floor is per utterance, not per batch.
        lld = self.spec.kind == "lld"
        feats = self.transform(padded) if lld else self.transform(padded.unsqueeze(1)).squeeze(1)  # (B, C, T)
        if self.spec.deltas:
            d1 = torchaudio.functional.compute_deltas(feats)
            feats = torch.cat([feats, d1, torchaudio.functional.compute_deltas(d1)], dim=1)
        feats = feats.transpose(1, 2)[:, : max(lengths)]  # (B, T, dim)
        mask = torch.arange(feats.shape[1], device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
        return feats * mask.unsqueeze(-1), mask


class InputNorm(torch.nn.Module):
    """Standardises feature frames with statistics of the training corpus, kept as buffers in the weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, feats: torch.Tensor, mask: torch.Tensor) -> None:
        """Sets the statistics from valid frames of ``(B, T, F)`` features."""
        valid = feats[mask]
        self.mean.copy_(valid.mean(dim=0))
        self.std.copy_(valid.std(dim=0).clamp(min=1e-4))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std * mask.unsqueeze(-1).to(feats.dtype)


class LowLevelDescriptors(torch.nn.Module):
    """The 34 short-term descriptors of pyAudioAnalysis, batched in torch: waveforms ``(B, N)`` → ``(B, 34, T)``.

    Per frame: zero-crossing rate, energy, energy entropy, spectral centroid, spread, entropy, flux, roll-off
    (90 %), 13 MFCCs, 12 chroma bins and the chroma deviation. This is the audio input of seed 001 (CBLA), whose
    paper computed them with pyAudioAnalysis; differences from it: a Hann-windowed STFT, torchaudio's mel
    filterbank (``n_mels`` bands) with an orthonormal DCT for the MFCCs. Frames are centred like torchaudio's
    MFCC (``N // hop + 1`` frames), so masks are computed the same way for every kind.
    """

    sub_blocks = 10  # sub-frames / sub-bands of the energy and spectral entropies

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.win = round(spec.sample_rate * spec.win_ms / 1000)
        self.hop = spec.hop_length
        self.n_fft = 1 << (self.win - 1).bit_length()
        n_bins = self.n_fft // 2 + 1
        freqs = torch.linspace(0, spec.sample_rate / 2, n_bins)
        self.register_buffer("window", torch.hann_window(self.win))
        self.register_buffer("freqs", freqs / (spec.sample_rate / 2))  # normalised to [0, 1]
        mel = torchaudio.functional.melscale_fbanks(n_bins, 0.0, spec.sample_rate / 2, spec.n_mels, spec.sample_rate)
        self.register_buffer("mel_fb", mel)  # (F, n_mels)
        self.register_buffer("dct", torchaudio.functional.create_dct(13, spec.n_mels, "ortho"))  # (n_mels, 13)
        # Chroma: each bin above 0 Hz goes to its pitch class (A0 = 27.5 Hz reference), averaged per class.
        pitch = torch.round(12 * torch.log2(freqs[1:] / 27.5)).long() % 12
        chroma = torch.zeros(n_bins, 12)
        chroma[torch.arange(1, n_bins), pitch] = 1.0
        self.register_buffer("chroma_fb", chroma / chroma.sum(0).clamp(min=1.0))
        sub = torch.arange(n_bins) * self.sub_blocks // n_bins
        self.register_buffer("band_fb", torch.nn.functional.one_hot(sub, self.sub_blocks).float())  # (F, 10)

    @staticmethod
    def _entropy(parts: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        p = parts / (parts.sum(-1, keepdim=True) + eps)
        return -(p * torch.log2(p + eps)).sum(-1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        eps = 1e-10
        half = self.win // 2
        frames = torch.nn.functional.pad(wave, (half, half)).unfold(-1, self.win, self.hop)  # (B, T, win)
        spec = torch.stft(wave, self.n_fft, self.hop, self.win, self.window, center=True, pad_mode="constant",
                          return_complex=True).abs().transpose(1, 2)  # (B, T, F)
        frames = frames[:, : spec.shape[1]]
        zcr = (frames[..., 1:].sign() - frames[..., :-1].sign()).abs().sum(-1) / (2 * (self.win - 1))
        energy = frames.pow(2).mean(-1)
        n_sub = self.win // self.sub_blocks
        sub = frames[..., : n_sub * self.sub_blocks].unflatten(-1, (self.sub_blocks, n_sub)).pow(2).sum(-1)
        energy_entropy = self._entropy(sub)
        mag = spec / self.win
        weight = mag / (mag.amax(-1, keepdim=True) + eps)
        den = weight.sum(-1) + eps
        centroid = (weight * self.freqs).sum(-1) / den
        spread = ((self.freqs - centroid.unsqueeze(-1)).pow(2) * weight).sum(-1).div(den).sqrt()
        power = mag.pow(2)
        spectral_entropy = self._entropy(power @ self.band_fb)
        dist = mag / (mag.sum(-1, keepdim=True) + eps)
        flux = torch.nn.functional.pad((dist[:, 1:] - dist[:, :-1]).pow(2).sum(-1), (1, 0))
        total = power.sum(-1, keepdim=True)
        rolloff = (power.cumsum(-1) <= 0.9 * total).sum(-1).clamp(max=power.shape[-1] - 1) / power.shape[-1]
        mfcc = (10 * torch.log10((spec.pow(2) @ self.mel_fb).clamp(min=eps))) @ self.dct  # (B, T, 13)
        chroma = (power @ self.chroma_fb) / (total + eps)  # (B, T, 12)
        scalars = torch.stack([zcr, energy, energy_entropy, centroid, spread, spectral_entropy, flux, rolloff], -1)
        feats = torch.cat([scalars, mfcc, chroma, chroma.std(-1, keepdim=True)], dim=-1)  # (B, T, 34)
        return feats.transpose(1, 2)
