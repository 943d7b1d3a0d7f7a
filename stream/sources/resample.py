"""Live audio to the pipeline's 16 kHz with a delay of a few milliseconds.

soxr's streaming resampler, at every quality above its cubic one, holds back 30 to 115 ms of output (64 ms on
average for 8 kHz telephony in 20 ms chunks: ``tests/stream/sources/test_resample.py`` measures it), and a live
call pays that at every utterance's end (``emo-bench --server-calls`` saw it as 60 ms the server added to
in-process replay). Live audio mostly comes at an integer multiple or divisor of 16 kHz (8 kHz telephony; 32 and
48 kHz sound cards): there a windowed-sinc low-pass run over the blocks, the input's last samples carried from
one block to the next, delays by half its length only, and that delay is taken off, so the output is aligned with
the input. Other rates (44.1 kHz) keep soxr.
"""

from __future__ import annotations

import numpy as np
import soxr
from scipy import signal

# Filter length per unit of the ratio: with a Kaiser window of beta 8, 80 dB of stop-band reached 0.6 kHz past the
# cutoff for 8 kHz in (telephony's 3.4 kHz band kept whole), for 4 ms of delay.
TAPS_PER_RATIO = 64


class LiveResampler:
    """``(channels, n)`` int16 blocks at ``rate`` in, ``(channels, m)`` int16 blocks at ``target`` out."""

    def __init__(self, rate: int, target: int, channels: int) -> None:
        self.up = target // rate if target % rate == 0 else 1
        self.down = rate // target if rate % target == 0 else 1
        self.channels = channels
        ratio = max(self.up, self.down)
        self.fir = ratio > 1
        self._soxr = None if self.fir or rate == target else soxr.ResampleStream(rate, target, channels, dtype="int16")
        taps = TAPS_PER_RATIO * ratio + 1 if self.fir else 1
        fir = signal.firwin(taps, 1.0 / ratio, window=("kaiser", 8.0)) * self.up if self.fir else np.ones(1)
        # Upsampling runs one sub-filter per output phase over the input itself (polyphase): the output of the
        # low-pass over the zero-stuffed signal, at 1/up of the work. The input's last samples are kept as history.
        self._phases = [fir[p :: self.up] for p in range(self.up)]
        self._history = np.zeros((channels, len(self._phases[0]) - 1))
        self._delay = (taps - 1) // 2  # the filter's delay, in samples at the filter's rate
        self._skip = self._delay  # dropped once, at the start
        self._phase = 0  # where the next filtered sample falls in the decimation's period
        self._seen = 0  # input samples per channel so far, for the exact output length at the end
        self._emitted = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self._soxr is not None:
            return np.ascontiguousarray(self._soxr.resample_chunk(np.ascontiguousarray(block.T)).T)
        if not self.fir:
            return block
        self._seen += block.shape[1]
        return self._filter(block.astype(np.float64))

    def flush(self) -> np.ndarray:
        """What the filter still holds (the last ``delay`` of the input), the total length made exact."""
        if self._soxr is not None:
            tail = self._soxr.resample_chunk(np.zeros((0, self.channels), np.int16), last=True)
            return np.ascontiguousarray(tail.T)
        if not self.fir:
            return np.zeros((self.channels, 0), np.int16)
        want = self._seen * self.up // self.down - self._emitted
        held = -(-self._delay // self.up) + self.down
        return self._filter(np.zeros((self.channels, held)))[:, : max(0, want)]

    def _filter(self, x: np.ndarray) -> np.ndarray:
        n, held = x.shape[1], self._history.shape[1]
        x = np.concatenate([self._history, x], axis=1)
        self._history = x[:, n:]
        y = np.empty((self.channels, n * self.up))
        for p, h in enumerate(self._phases):  # np.convolve: a few microseconds a call, where lfilter takes tens
            start = held - (len(h) - 1)
            for c in range(self.channels):
                y[c, p :: self.up] = np.convolve(x[c, start:], h, "valid")
        drop = min(self._skip, y.shape[1])
        self._skip -= drop
        y = y[:, drop:]
        if self.down > 1:
            # Every sample was filtered and one in ``down`` is kept: filtering only the kept ones through strided
            # windows and a matrix product measured slower (61 against 26 µs per 20 ms block at 48 kHz, timeit).
            start = (-self._phase) % self.down
            self._phase = (self._phase + y.shape[1]) % self.down
            y = y[:, start :: self.down]
        self._emitted += y.shape[1]
        return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
