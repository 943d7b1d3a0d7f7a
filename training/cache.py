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
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from emostream.models import features, functionals, whisper_layers, whisper_states
from emostream.models.features import Extractor, FeatureSpec, make_extractor
from emostream.models.functionals import FUNCTIONAL_SETS
from emostream.models.text_encoder import TextEncoder, TextEncoderSpec, TextEncoding
from emostream.models.whisper_states import Precision
from emostream.stream.stages import vad as vad_module
from emostream.stream.stages.vad import SAMPLE_RATE, VadConfig, cut_utterance, speech_spans
from emostream.training import speed as speed_module
from emostream.training import telephone as telephone_module
from emostream.training.speed import SPEEDS, perturb_speed
from emostream.training.telephone import telephone

log = logging.getLogger(__name__)


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


Take = Callable[[TextEncoding, int], torch.Tensor]


def _text_stores(texts: Sequence[str], spec: TextEncoderSpec, stores: list[tuple[Path, Take]], what: str,
                 batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The stored values of every distinct non-empty text, one dict per ``(path, take)`` store: texts missing from
    any store are encoded once (one encoder pass serves all stores), ``take`` picks what a store keeps of row j of
    an encoded batch, and changed stores are saved again."""
    loaded: list[dict[str, torch.Tensor]] = [torch.load(p, weights_only=True) if p.is_file() else {}
                                             for p, _ in stores]
    todo = sorted({t for t in texts if t and any(t not in store for store in loaded)})
    if todo:
        encoder = TextEncoder(spec)
        for i in tqdm(range(0, len(todo), batch_size), desc=what, unit="batch", mininterval=2.0):
            chunk = todo[i : i + batch_size]
            enc = encoder.encode(chunk)
            for j, text in enumerate(chunk):
                for store, (_, take) in zip(loaded, stores, strict=True):
                    store[text] = take(enc, j)
        for store, (path, _) in zip(loaded, stores, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(store, path)
    return loaded


def _sentence_store(spec: TextEncoderSpec, cache_dir: Path) -> tuple[Path, Take]:
    # Sentence vectors depend on the encoder and the truncation only, not on which token states a spec asks for.
    key = {"name": spec.name, "max_tokens": spec.max_tokens, "level": "sentence"}
    return (cache_dir / "text" / f"{_digest(json.dumps(key, sort_keys=True))[:16]}.pt",
            lambda enc, j: enc.sentence[j].clone())


def _token_store(spec: TextEncoderSpec, cache_dir: Path) -> tuple[Path, Take]:
    key = {"name": spec.name, "max_tokens": spec.max_tokens, "token_layer": spec.token_layer, "kind": "tokens"}
    return (cache_dir / "text" / f"tokens-{_digest(json.dumps(key, sort_keys=True))[:16]}.pt",
            lambda enc, j: enc.tokens[j, : int(enc.mask[j].sum())].half().clone())


def text_embeddings(texts: Sequence[str], spec: TextEncoderSpec, cache_dir: Path,
                    batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Sentence embedding of every distinct text; "" maps to zeros (no words heard)."""
    (store,) = _text_stores(texts, spec, [_sentence_store(spec, cache_dir)], "text embeddings", batch_size)
    return {t: store[t] if t else torch.zeros(spec.dim) for t in set(texts)}


def text_features(texts: Sequence[str], spec: TextEncoderSpec, cache_dir: Path,
                  batch_size: int = 64) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """What ``dialogue_inputs`` takes of every text: its sentence embedding ("" maps to zeros), and for a spec of
    ``level: token`` its token states ``(L, dim)`` of layer ``spec.token_layer``, stored as float16 (None for a
    sentence-level spec)."""
    if spec.level != "token":
        return text_embeddings(texts, spec, cache_dir, batch_size), None
    sentences, tokens = _text_stores(texts, spec, [_sentence_store(spec, cache_dir), _token_store(spec, cache_dir)],
                                     "text features", batch_size)
    return ({t: sentences[t] if t else torch.zeros(spec.dim) for t in set(texts)},
            {t: tokens[t] for t in set(texts) if t})


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


CHANNELS = ("clean", "telephone", *SPEEDS)  # SPEEDS: the clip played slower or faster (training/speed.py)


def heard_clip(path: Path, vad: VadConfig, channel: str = "clean",
               data: bytes | None = None) -> tuple[np.ndarray, bool]:
    """The clip as the stream would get it through ``channel`` (its phone line seeded by the file's bytes, ``data``
    if already read) and cut by the VAD, and whether the VAD heard speech (if not, the whole clip)."""
    audio = load_audio(path)
    if channel == "telephone":
        audio = telephone(audio, int(_digest(data if data is not None else path.read_bytes())[:8], 16))
    elif channel in SPEEDS:
        audio = perturb_speed(audio, SPEEDS[channel])
    cut = vad_cut(audio, vad)
    return (audio, False) if cut is None else (cut, True)
Narrow = Callable[[np.ndarray], "np.ndarray | None"]


def _wider(spec: FeatureSpec) -> list[tuple[FeatureSpec, Narrow]]:
    """Other specs whose cached frames hold ``spec``'s exactly, each with how to take them out (None: not from this
    clip's entry), so that a front end already cached is not computed again for a spec it contains.

    Whisper states are the first columns of the same states with functionals appended (``WithFunctionals``), and
    a larger frame cap gives the same states for a clip that has no more frames than ``spec``'s cap (the encoder
    then read the same audio, uncut, in the same window). So the seed architectures' tiny.en states come from the
    entries of the ``fast`` bundle's front end (tiny.en's output, 1000 frames, eGeMAPS) where its training cached
    them; the default's (encoder block 2) holds other states.
    """
    if spec.kind != "whisper" or spec.functionals:
        return []
    caps = {spec.max_frames, max(spec.max_frames, FeatureSpec.max_frames)}
    wider = {replace(spec, functionals=f, max_frames=m) for f in ("", *FUNCTIONAL_SETS) for m in caps} - {spec}
    return [(w, lambda f: f[:, : spec.dim] if len(f) <= spec.max_frames else None)
            for w in sorted(wider, key=lambda w: (w.functionals, w.max_frames))]


def audio_frames(paths: Sequence[Path], spec: FeatureSpec, vad: VadConfig, cache_dir: Path,
                 gain_db: float = 0.0, channel: str = "clean", precision: Precision = "float32") -> list[torch.Tensor]:
    """Raw (un-normalised) feature frames ``(T, dim)`` of each VAD-cut clip, ``gain_db`` louder if given.

    ``channel="telephone"`` plays each clip through a simulated phone line first (training/telephone.py; its
    random draws seeded by the clip's bytes, so a clip always sounds the same), as a call would reach the stream;
    ``"slow"`` and ``"fast"`` play it 10 % slower or faster (training/speed.py). ``precision`` is the arithmetic
    of Whisper's inner blocks (``WhisperStates``): training uses float32; a stream may serve in bfloat16, which
    evaluation can score.

    A clip in which the VAD hears nothing is used whole (and counted in the log) rather than dropped,
    so that the label distribution of a split does not depend on the VAD. A clip missing from the cache is taken
    from a cached wider front end where one holds its frames exactly (``_wider``), else computed and stored.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown audio channel {channel!r}; use one of {', '.join(CHANNELS)}")
    modules = (features, functionals, whisper_states, whisper_layers, vad_module)
    modules += {"clean": (), "telephone": (telephone_module,)}.get(channel, (speed_module,))
    code = _digest("".join(inspect.getsource(m) for m in modules))

    def settings(of: FeatureSpec) -> str:
        keyed: dict[str, Any] = {"features": of.to_dict(), "vad": asdict(vad), "code": code}
        if gain_db:
            keyed["gain_db"] = gain_db
        if channel != "clean":
            keyed["channel"] = channel
        if precision != "float32":
            keyed["precision"] = precision
        return json.dumps(keyed, sort_keys=True)

    own, wider = settings(spec), [(settings(w), narrow) for w, narrow in _wider(spec)]
    extractor: Extractor | None = None  # loaded at the first clip that needs computing
    out: list[torch.Tensor] = []
    uncut = 0
    for path in tqdm(paths, desc="audio features", unit="clip", mininterval=2.0):
        data = path.read_bytes()
        file = cache_dir / "audio" / f"{_digest(data, own)}.npy"
        if file.is_file():
            out.append(torch.from_numpy(np.load(file)))
            continue
        if (frames := _from_wider(data, wider, cache_dir)) is not None:
            out.append(frames)
            continue
        cut, heard = heard_clip(path, vad, channel, data)
        uncut += not heard
        if gain_db:
            cut = cut * np.float32(10.0 ** (gain_db / 20.0))
        extractor = extractor or make_extractor(spec, threads=2, precision=precision)
        feats, mask = extractor([torch.from_numpy(np.ascontiguousarray(cut))])
        frames = feats[0, : int(mask[0].sum())].contiguous()
        file.parent.mkdir(parents=True, exist_ok=True)
        part = file.with_name(f"{file.name}.{os.getpid()}.part")  # whole or absent: other runs may read this cache
        with part.open("wb") as fh:
            np.save(fh, frames.numpy())
        part.replace(file)
        out.append(frames)
    if uncut:
        log.warning("VAD heard no speech in %d of %d clips; used them uncut", uncut, len(paths))
    return out


def _from_wider(data: bytes, wider: list[tuple[str, Narrow]], cache_dir: Path) -> torch.Tensor | None:
    """The clip's frames taken from the first cached entry of a wider front end that holds them, if any."""
    for settings, narrow in wider:
        file = cache_dir / "audio" / f"{_digest(data, settings)}.npy"
        if file.is_file() and (frames := narrow(np.load(file))) is not None:
            return torch.from_numpy(np.ascontiguousarray(frames))
    return None
