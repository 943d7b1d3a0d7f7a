"""Content-keyed caches of text embeddings and acoustic frames, so reruns skip the slow encoders.

A text embedding is keyed by the encoder spec and the text; audio frames by the file's bytes, the
feature spec, the VAD settings and the source code of the feature extractor and the VAD. Changing any of
them computes afresh; nothing is ever stale.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from emostream.models import features, whisper_states
from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.text_encoder import TextEncoder, TextEncoderSpec, TextEncoding
from emostream.stream.stages import vad as vad_module
from emostream.stream.stages.vad import SAMPLE_RATE, VadConfig, cut_utterance, speech_spans

log = logging.getLogger(__name__)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _text_store(texts: Sequence[str], spec: TextEncoderSpec, path: Path, what: str, batch_size: int,
                take: Callable[[TextEncoding, int], torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored value of every distinct non-empty text in ``path``; missing ones are encoded, ``take`` picks
    what to keep of row j of an encoded batch, and the store is saved again."""
    store: dict[str, torch.Tensor] = torch.load(path, weights_only=True) if path.is_file() else {}
    todo = sorted({t for t in texts if t and t not in store})
    if todo:
        encoder = TextEncoder(spec)
        for i in tqdm(range(0, len(todo), batch_size), desc=what, unit="batch"):
            chunk = todo[i : i + batch_size]
            enc = encoder.encode(chunk)
            for j, text in enumerate(chunk):
                store[text] = take(enc, j)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(store, path)
    return store


def text_embeddings(texts: Sequence[str], spec: TextEncoderSpec, cache_dir: Path,
                    batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Sentence embedding of every distinct text; "" maps to zeros (no words heard)."""
    # Sentence vectors depend on the encoder and the truncation only, not on which token states a spec asks for.
    key = {"name": spec.name, "max_tokens": spec.max_tokens, "level": "sentence"}
    path = cache_dir / "text" / f"{_digest(json.dumps(key, sort_keys=True))[:16]}.pt"
    store = _text_store(texts, spec, path, "text embeddings", batch_size, lambda enc, j: enc.sentence[j].clone())
    return {t: store[t] if t else torch.zeros(spec.dim) for t in set(texts)}


def token_states(texts: Sequence[str], spec: TextEncoderSpec, cache_dir: Path,
                 batch_size: int = 64) -> dict[str, torch.Tensor] | None:
    """Token states ``(L, dim)`` (of layer ``spec.token_layer``) of every distinct non-empty text, for a spec of
    ``level: token``; None for a sentence-level spec. Stored as float16 (MELD's take ~120 MB)."""
    if spec.level != "token":
        return None
    key = {"name": spec.name, "max_tokens": spec.max_tokens, "token_layer": spec.token_layer, "kind": "tokens"}
    path = cache_dir / "text" / f"tokens-{_digest(json.dumps(key, sort_keys=True))[:16]}.pt"
    store = _text_store(texts, spec, path, "token states", batch_size,
                        lambda enc, j: enc.tokens[j, : int(enc.mask[j].sum())].half().clone())
    return {t: store[t] for t in set(texts) if t}


def text_features(texts: Sequence[str], spec: TextEncoderSpec,
                  cache_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """What ``dialogue_inputs`` takes of every text: its sentence embedding, and its token states for a spec of
    ``level: token`` (None otherwise)."""
    return text_embeddings(texts, spec, cache_dir), token_states(texts, spec, cache_dir)


def load_audio(path: Path) -> np.ndarray:
    """A file as 16 kHz mono float32 in [-1, 1]: channels are averaged, other rates resampled (soxr, as the
    stream's file source does), so that a manifest may point at any recording."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    return mono


def vad_cut(audio: np.ndarray, vad: VadConfig) -> np.ndarray | None:
    """The clip as the live stream would hand it on: first to last voiced sample plus the stream's padding.

    None when the VAD hears no speech at all.
    """
    spans = speech_spans(audio, vad)
    if not spans:
        return None
    return cut_utterance(audio, (spans[0][0], spans[-1][1]), vad)


def audio_frames(paths: Sequence[Path], spec: FeatureSpec, vad: VadConfig, cache_dir: Path,
                 gain_db: float = 0.0) -> list[torch.Tensor]:
    """Raw (un-normalised) feature frames ``(T, dim)`` of each VAD-cut clip, ``gain_db`` louder if given.

    A clip in which the VAD hears nothing is used whole (and counted in the log) rather than dropped,
    so that the label distribution of a split does not depend on the VAD.
    """
    code = "".join(inspect.getsource(m) for m in (features, whisper_states, vad_module))
    keyed: dict[str, Any] = {"features": spec.to_dict(), "vad": asdict(vad), "code": _digest(code)}
    if gain_db:
        keyed["gain_db"] = gain_db
    settings = json.dumps(keyed, sort_keys=True)
    extractor = make_extractor(spec, threads=2)
    out: list[torch.Tensor] = []
    uncut = 0
    for path in tqdm(paths, desc="audio features", unit="clip", mininterval=2.0):
        data = path.read_bytes()
        file = cache_dir / "audio" / f"{_digest(data, settings)}.npy"
        if file.is_file():
            out.append(torch.from_numpy(np.load(file)))
            continue
        audio = load_audio(path)
        cut = vad_cut(audio, vad)
        if cut is None:
            uncut += 1
            cut = audio
        if gain_db:
            cut = cut * np.float32(10.0 ** (gain_db / 20.0))
        feats, mask = extractor([torch.from_numpy(np.ascontiguousarray(cut))])
        frames = feats[0, : int(mask[0].sum())].contiguous()
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, frames.numpy())
        out.append(frames)
    if uncut:
        log.warning("VAD heard no speech in %d of %d clips; used them uncut", uncut, len(paths))
    return out
