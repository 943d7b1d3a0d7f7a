"""Speaker turns for a mono stream: a packaged GE2E voice encoder and an online, past-only speaker tracker.

The encoder is Resemblyzer's (``pip install --no-deps resemblyzer``; its ``pretrained.pt`` ships inside the wheel,
so loading never touches the network). We load those weights into our own copy of its small network and compute
its mel input with torch, because ``import resemblyzer`` pulls in librosa (and the compiled ``webrtcvad``) for
preprocessing we do not need: the pipeline already hands us 16 kHz float utterances cut by the VAD.

The tracker sees utterances in stream order and never revises a label it has published, so downstream context
(who said what before) stays consistent with what listeners already received.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emostream.stream.errors import UserError
from emostream.stream.stages.vad import SAMPLE_RATE

EMBED_DIM = 256
# Resemblyzer's hyper-parameters (resemblyzer/hparams.py): its weights expect exactly this input.
_N_FFT = 400  # 25 ms window
_HOP = 160  # 10 ms step
_N_MELS = 40
_PARTIAL_FRAMES = 160  # 1.6 s windows, as the encoder was trained on
_PARTIAL_STEP = 77  # round(100 frames/s / 1.3 windows/s), Resemblyzer's default overlap
_TARGET_DBFS = -30.0  # Resemblyzer raises quiet audio to this level (its input is a power, not log, mel)
_SILENT_DBFS = -70.0  # below this RMS there is no voice to describe, only the network's bias


@dataclass(frozen=True)
class SpeakerConfig:
    """``speakers.*`` in the stream config.

    ``threshold`` is the cosine similarity above which an utterance joins a known speaker; its default comes from
    the calibration in docs/speakers.md. Utterances shorter than ``min_utterance_s`` give unreliable embeddings:
    they are labelled with the nearest known speaker but neither move its centroid nor open a new speaker.
    """

    enabled: bool = True
    threshold: float = 0.55
    max_speakers: int = 8
    min_utterance_s: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"speakers.enabled must be true or false, not {self.enabled!r}")
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"speakers.threshold must be a cosine similarity in [-1, 1], not {self.threshold}")
        if not isinstance(self.max_speakers, int) or isinstance(self.max_speakers, bool) or self.max_speakers < 1:
            raise ValueError(f"speakers.max_speakers must be an integer >= 1, not {self.max_speakers!r}")
        if not 0.0 <= self.min_utterance_s <= 30.0:
            raise ValueError(f"speakers.min_utterance_s must be in [0, 30] seconds, not {self.min_utterance_s}")


def weights_path() -> Path:
    """Where the installed ``resemblyzer`` wheel keeps its weights (found without importing the package)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the speaker encoder for mono streams needs its weights: pip install --no-deps resemblyzer==0.1.4 "
            "(or set speakers.enabled: false in the config)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise UserError(f"resemblyzer is installed but its weights are missing: {path}; reinstall it with --no-deps")
    return path


class _GE2E(nn.Module):
    """Resemblyzer's ``VoiceEncoder`` network: 3-layer LSTM over 40 mel bands, last hidden state → 256-d."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(_N_MELS, EMBED_DIM, 3, batch_first=True)
        self.linear = nn.Linear(EMBED_DIM, EMBED_DIM)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        return torch.relu(self.linear(hidden[-1]))


def _mel_filters() -> torch.Tensor:
    """librosa's default mel filterbank (Slaney scale and area normalisation), as Resemblyzer used it."""
    import torchaudio.functional as taf

    return taf.melscale_fbanks(_N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, _N_MELS, SAMPLE_RATE, "slaney", "slaney")


def _dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-240 for digital silence)."""
    return 20.0 * float(np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)) if len(x) else -240.0


class SpeakerEncoder:
    """Utterance audio → 256-d L2-normalised speaker embedding (cosine similarity compares voices).

    ``bfloat16``: the LSTM's matrix products in bfloat16 (autocast; for a device that has it in hardware, as
    ``model.precision`` decides): 0.6x the time, embeddings within a cosine of 0.9999 of float32's.
    """

    def __init__(self, device: str | torch.device = "cpu", weights: str | Path | None = None,
                 bfloat16: bool = False) -> None:
        self.device = torch.device(device)
        self.bfloat16 = bfloat16
        state = torch.load(weights or weights_path(), map_location="cpu", weights_only=True)["model_state"]
        net = _GE2E()
        # The checkpoint also holds GE2E's training-only similarity scale and bias; nothing else may be missing.
        missing, _ = net.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f"speaker encoder weights lack {missing}")
        self.net = net.eval().to(self.device)
        self._fbank = _mel_filters().to(self.device)  # (freqs, mels)
        self._window = torch.hann_window(_N_FFT, device=self.device)

    def mel(self, audio: np.ndarray) -> torch.Tensor:
        """(frames, 40) power mel spectrogram, volume-normalised like Resemblyzer's ``preprocess_wav``."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        gain_db = _TARGET_DBFS - _dbfs(x)
        if len(x) and 0.0 < gain_db < 200.0:  # increase only, as Resemblyzer does (not digital silence)
            x = x * np.float32(10.0 ** (gain_db / 20.0))
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        spec = torch.stft(t, _N_FFT, _HOP, window=self._window, center=True, pad_mode="constant", return_complex=True)
        return (spec.abs().square().T @ self._fbank).float()

    @torch.inference_mode()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Float32 16 kHz mono → (256,) unit vector; all-zero for empty or silent (< -70 dBFS RMS) audio.

        Long utterances are cut into overlapping 1.6 s windows whose embeddings are averaged (Resemblyzer's
        scheme). Shorter ones, including those under 1 s, go through the LSTM once at their true length rather
        than padded with silence to 1.6 s: the last hidden state then describes speech, not trailing zeros.
        """
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if len(x) < _HOP or _dbfs(x) < _SILENT_DBFS:
            return np.zeros(EMBED_DIM, dtype=np.float32)
        mel = self.mel(x)
        n = mel.shape[0]
        if n <= _PARTIAL_FRAMES:
            batch = mel[None]
        else:
            starts = list(range(0, n - _PARTIAL_FRAMES + 1, _PARTIAL_STEP))
            if starts[-1] + _PARTIAL_FRAMES < n:
                starts.append(n - _PARTIAL_FRAMES)  # cover the tail without padding
            batch = torch.stack([mel[s : s + _PARTIAL_FRAMES] for s in starts])
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            raw = self.net(batch).float()
        partial = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)
        mean = partial.mean(dim=0)
        norm = float(mean.norm())
        if norm < 1e-6:
            return np.zeros(EMBED_DIM, dtype=np.float32)
        return (mean / norm).cpu().numpy().astype(np.float32)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One tracker decision: the label, its cosine similarity to that speaker's centroid before the update
    (1.0 for a new speaker), and whether the utterance opened that speaker."""

    speaker: str
    similarity: float
    new: bool


class SpeakerTracker:
    """Online speaker labels for one mono stream, from past utterances only.

    Each speaker's centroid is the running mean of its utterances' unit embeddings (memory: ``max_speakers``
    by 256 floats). An utterance joins the most similar centroid when the cosine similarity reaches
    ``cfg.threshold``; otherwise it opens ``spk<N+1>``, unless ``max_speakers`` are known, when it joins the
    nearest. Ties go to the earlier speaker, so equal inputs always give equal labels.
    """

    def __init__(self, cfg: SpeakerConfig | None = None, encoder: SpeakerEncoder | None = None) -> None:
        self.cfg = cfg or SpeakerConfig()
        self._encoder = encoder
        self._sums = np.zeros((self.cfg.max_speakers, EMBED_DIM), dtype=np.float64)
        self._counts = np.zeros(self.cfg.max_speakers, dtype=np.int64)
        self._n = 0

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(f"spk{i + 1}" for i in range(self._n))

    @property
    def counts(self) -> tuple[int, ...]:
        """Utterances that shaped each speaker's centroid."""
        return tuple(int(c) for c in self._counts[: self._n])

    def reset(self) -> None:
        """Forget every speaker (a new call on the same stream)."""
        self._sums[:] = 0.0
        self._counts[:] = 0
        self._n = 0

    def assign(self, audio: np.ndarray) -> Assignment:
        """Embed a 16 kHz float utterance and label it."""
        if self._encoder is None:
            self._encoder = SpeakerEncoder()
        return self.assign_embedding(self._encoder.embed(audio), len(audio) / SAMPLE_RATE)

    def assign_embedding(self, embedding: np.ndarray, duration_s: float) -> Assignment:
        """Label an utterance from its unit embedding (zero vector: no usable voice) and its duration."""
        e = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if e.shape != (EMBED_DIM,):
            raise ValueError(f"speaker embedding must have {EMBED_DIM} values, got {e.shape}")
        reliable = duration_s >= self.cfg.min_utterance_s and float(np.linalg.norm(e)) > 0.5
        if self._n == 0:
            # Too little voice to found a speaker on: label it as the first speaker-to-be, remember nothing.
            return self._open(e) if reliable else Assignment("spk1", 0.0, False)
        centroids = self._sums[: self._n]  # a sum points where the mean does
        sims = centroids @ e / np.maximum(np.linalg.norm(centroids, axis=1), 1e-12)
        best = int(np.argmax(sims))  # first maximum: deterministic tie-break
        sim = float(sims[best])
        if reliable and (sim >= self.cfg.threshold or self._n >= self.cfg.max_speakers):
            self._sums[best] += e
            self._counts[best] += 1
        elif reliable:
            return self._open(e)
        return Assignment(f"spk{best + 1}", sim, False)

    def _open(self, e: np.ndarray) -> Assignment:
        i = self._n
        self._sums[i] = e
        self._counts[i] = 1
        self._n += 1
        return Assignment(f"spk{i + 1}", 1.0, True)
