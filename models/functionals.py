"""Utterance-level acoustic functionals (openSMILE's eGeMAPS v02), appended to every frame of an utterance.

eGeMAPS is the standard cross-corpus baseline of speech emotion research: 88 statistics of pitch, loudness, voice
quality and spectral shape over the whole utterance, designed to mean the same thing in any language and studio.
Beside Whisper's encoder states they lift leave-one-corpus-out recall (docs/cross_corpus.md). They are computed by
openSMILE itself (PyPI ``opensmile``, offline, a few milliseconds per utterance) and broadcast to each frame, so
every model that pools frames sees them without a second input: a frame's mean carries them, its spread is zero.

A live stream feeds them as the utterance is spoken (:class:`LiveFunctionals`): openSMILE then computes its
frame-level descriptors while the speaker talks, and the end of the utterance costs milliseconds, not the ~11 ms
per second of speech that one pass over the whole utterance takes.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch

from emostream.models.packaged import MissingModel

FUNCTIONAL_SETS: dict[str, int] = {"egemaps": 88}  # name -> values per utterance
_MIN_SAMPLES = 1600  # openSMILE needs a few frames; shorter audio is zero-padded to 100 ms


class Functionals:
    """Waveforms (16 kHz float) → ``(B, dim)`` functionals of each one."""

    def __init__(self, name: str, sample_rate: int = 16000) -> None:
        if name not in FUNCTIONAL_SETS:
            raise ValueError(f"unknown functionals {name!r}; known: {', '.join(FUNCTIONAL_SETS)}")
        try:
            import opensmile
        except ImportError:
            raise MissingModel("this bundle's eGeMAPS functionals need openSMILE (audEERING research licence: "
                               "non-commercial use only): pip install 'emo-stream[egemaps]'") from None
        self.dim = FUNCTIONAL_SETS[name]
        self.sample_rate = sample_rate
        self.smile: Any = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)

    def __call__(self, waveforms: list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.values(w.detach().cpu().numpy()) for w in waveforms]))

    def values(self, audio: np.ndarray) -> np.ndarray:
        """``(dim,)`` float32: the functionals of one utterance's 16 kHz float waveform."""
        audio = audio.astype(np.float32, copy=False)
        if len(audio) < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - len(audio)))
        return _finite(self.smile.process_signal(audio, self.sample_rate).to_numpy(dtype=np.float32)[0])

    def live(self) -> LiveFunctionals:
        """An extraction to feed while the utterance is spoken (one per utterance)."""
        return LiveFunctionals(self)


def _finite(values: np.ndarray) -> np.ndarray:
    # openSMILE gives NaN for a statistic over no frames (no voiced segment, say): the models read 0.
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


class LiveFunctionals:
    """One utterance's functionals computed as its audio arrives, equal to :meth:`Functionals.values` of the whole.

    openSMILE's external audio source takes samples while ``run`` works through them on a thread of its own (it
    waits without spinning when it has none); at :meth:`finish` only the last samples and the statistics remain.
    The thread is the extraction's own, not a pool's: it lives as long as the utterance is spoken.
    """

    def __init__(self, functionals: Functionals) -> None:
        from opensmile.core.config import config

        self._source = config.EXTERNAL_SOURCE_COMPONENT
        # As ``Smile.process_signal`` sets its native instance up (int16 samples through its external source).
        smile = functionals.smile
        options = smile._options() | {"source": f"{smile.default_config_root}/{config.EXTERNAL_INPUT_CONFIG}",
                                      "sampleRate": functionals.sample_rate, "nBits": 16}
        self._native = smile._smile(options=options)
        self._rows: list[np.ndarray] = []
        self._native.external_sink_set_callback_ex(config.EXTERNAL_OUTPUT_COMPONENT,
                                                   lambda data, meta: self._rows.append(data.copy()))
        self.fed = 0  # samples written so far
        self._audio = np.zeros(0, np.float32)  # what they were taken from: the utterance up to ``fed``
        self.result: Future[np.ndarray] = Future()  # set when openSMILE's run ends (finish, abort or a failure)
        self.ended = False  # finish or abort was called: nothing more is written
        self._lock = threading.Lock()  # the native instance is freed by the run's thread, used by the caller's
        self._freed = False
        threading.Thread(target=self._run, name="opensmile-live", daemon=True).start()

    def _run(self) -> None:
        self.result.set_running_or_notify_cancel()
        try:
            self._native.run()
            self.result.set_result(_finite(self._rows[0].astype(np.float32).reshape(-1)) if self._rows
                                   else np.zeros(0, np.float32))  # ended before a frame was fed
        except Exception as e:  # handed to whoever awaits the result
            self.result.set_exception(e)
        finally:
            with self._lock:
                self._native.free()
                self._freed = True

    def _call(self, method: str, *args: Any) -> None:
        with self._lock:
            if not self._freed:  # else the run failed, and the result says why
                getattr(self._native, method)(*args)

    def feed(self, audio: np.ndarray) -> bool:
        """Writes what ``audio`` (the utterance from its first sample up to now) holds beyond what was fed. False,
        writing nothing, when it does not begin with what was fed (another cut) or the extraction has ended."""
        if self.ended or len(audio) < self.fed or not np.array_equal(audio[: self.fed], self._audio):
            return False
        if len(audio) > self.fed:
            pcm = (audio[self.fed :] * 32768).astype(np.int16)  # the conversion process_signal makes
            self._call("external_audio_source_write_data", self._source, pcm.tobytes())
            self.fed, self._audio = len(audio), audio
        return True

    def finish(self, audio: np.ndarray) -> Future[np.ndarray] | None:
        """The utterance ends with ``audio``: its functionals, once openSMILE has worked through the rest. None when
        ``audio`` is another cut than the one fed so far (extract it anew)."""
        if self.ended:
            return self.result if np.array_equal(audio, self._audio) else None
        if not self.feed(audio):
            return None
        if self.fed < _MIN_SAMPLES:  # padded as Functionals.values pads
            self._call("external_audio_source_write_data", self._source,
                       np.zeros(_MIN_SAMPLES - self.fed, np.int16).tobytes())
        self.ended = True
        self._call("external_audio_source_set_eoi", self._source)
        return self.result

    def abort(self) -> None:
        """Ends the extraction unused (the utterance was cut otherwise); its thread ends on its own. By the end of
        input, not openSMILE's abort, which fails before the run has started; what is left to compute is at most
        the audio written since openSMILE last caught up."""
        if not self.ended:
            self.ended = True
            self._call("external_audio_source_set_eoi", self._source)


class WithFunctionals:
    """A frame extractor whose frames also carry the utterance's functionals: ``(B, T, dim + functionals)``."""

    def __init__(self, frames: Any, functionals: Functionals) -> None:
        self.frames, self.functionals = frames, functionals

    def __call__(self, waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = self.frames(waveforms)
        return appended(feats, self.functionals(waveforms), mask), mask


def appended(frames: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., T, dim)`` frames with their utterance's functionals ``(..., F)`` appended to each: ``(..., T, dim + F)``;
    zero on the frames ``mask`` marks as padding."""
    extra = values.to(frames.device, frames.dtype).unsqueeze(-2).expand(*frames.shape[:-1], -1)
    if mask is not None:
        extra = extra * mask.unsqueeze(-1).to(frames.dtype)
    return torch.cat([frames, extra], dim=-1)
