"""Stage: frames of every channel → utterances, one VAD segmenter per channel.

While an utterance is spoken it also emits the audio so far every ``partial_interval_ms`` (input for
partial transcripts), and the utterance as it would end when speech pauses (``EndCandidate``): a first guess
``speculate_after_ms`` into the pause (for ASR), and the exact cut once the pause is as long as the post-roll
(for features), so both can start before the hangover confirms the end. Once a candidate is out, no partial is
sent until speech resumes: the candidate's decode hears the same words.
Utterance ids are given at the first partial or at the end, whichever comes first, so a click that the
VAD drops for being too short never consumes an id.
"""

from __future__ import annotations

import time
from collections import deque

from emostream.stream.messages import AudioFrame, EndCandidate, PartialAudio, Utterance
from emostream.stream.stages.stage import Stage, elapsed_ms
from emostream.stream.stages.vad import SAMPLE_RATE, Segment, Segmenter, VadConfig


class Segmentation(Stage[AudioFrame, Utterance | PartialAudio | EndCandidate]):
    name = "vad"
    accepts = (AudioFrame,)

    def __init__(self, stream_id: str, cfg: VadConfig, speakers: tuple[str, ...], partial_interval_ms: int,
                 speculate_after_ms: int) -> None:
        self.stream_id = stream_id
        self.cfg = cfg
        self.speakers = speakers
        self.partial_every = cfg.frames(partial_interval_ms) if partial_interval_ms else 0
        # Pause lengths (frames) at which to send a candidate; at the post-roll the audio so far is what the
        # endpoint will hand on, sample for sample.
        self.exact_after = max(1, cfg.frames(cfg.post_roll_ms))
        self.guesses = sorted({cfg.frames(speculate_after_ms), self.exact_after}) if speculate_after_ms else []
        self.segmenters: dict[int, Segmenter] = {}
        # Arrival time of recent frames, to date the end of speech that the hangover confirms later.
        self.arrivals: dict[int, deque[tuple[int, float]]] = {}
        self.open_ids: dict[int, tuple[str, int]] = {}  # channel → (utterance id, seq) of speech in progress
        self.seq = 0

    def speaker(self, channel: int) -> str:
        return self.speakers[channel] if channel < len(self.speakers) else f"ch{channel}"

    def _id(self, channel: int) -> tuple[str, int]:
        if channel not in self.open_ids:
            self.seq += 1
            self.open_ids[channel] = (f"{self.stream_id}-{self.seq:05d}", self.seq)
        return self.open_ids[channel]

    async def process(self, item: AudioFrame) -> list[Utterance | PartialAudio | EndCandidate]:
        ch = item.channel
        seg = self.segmenters.get(ch)
        if seg is None:
            seg = self.segmenters[ch] = Segmenter(self.cfg)
            keep = self.cfg.frames(self.cfg.hangover_ms) + self.cfg.frames(self.cfg.max_utterance_ms) + 2
            self.arrivals[ch] = deque(maxlen=keep)
        self.arrivals[ch].append((item.index, item.wall))
        out: list[Utterance | PartialAudio | EndCandidate] = [
            self._utterance(ch, s, time.monotonic()) for s in seg.push(item.samples)
        ]
        for frames in self.guesses:
            pause = seg.pausing(frames)
            if pause is not None and self._long_enough(pause.end - pause.start):
                out.append(EndCandidate(self._id(ch)[0], pause.end / SAMPLE_RATE, pause.audio,
                                        exact=frames == self.exact_after))
        spoken = seg.speech_frames
        if (self.partial_every and spoken >= self.partial_every and spoken % self.partial_every == 0
                and not self._candidate_sent(seg)):
            current = seg.current()  # copies the utterance so far: only when a partial is due
            assert current is not None
            uid, seq = self._id(ch)
            out.append(PartialAudio(self.stream_id, uid, seq, ch, self.speaker(ch), current.start / SAMPLE_RATE,
                                    current.end / SAMPLE_RATE, current.audio, item.wall))
        return out

    def _long_enough(self, voiced_samples: int) -> bool:
        return voiced_samples * 1000 >= self.cfg.min_utterance_ms * SAMPLE_RATE

    def _candidate_sent(self, seg: Segmenter) -> bool:
        """An ``EndCandidate`` went out for the current pause: the final decode it starts (now, or at the exact cut
        when the features share the encode) hears every word a partial would hear now, so a partial would only
        make that final wait for the ASR (on the cluster, in the same batch)."""
        voiced = (seg.speech_frames - seg.pause_frames) * self.cfg.frame_samples
        return bool(self.guesses) and seg.pause_frames >= self.guesses[0] and self._long_enough(voiced)

    async def flush(self) -> list[Utterance | PartialAudio | EndCandidate]:
        now = time.monotonic()
        return [self._utterance(ch, s, now) for ch, seg in self.segmenters.items() for s in seg.flush()]

    def _utterance(self, channel: int, s: Segment, endpoint_wall: float) -> Utterance:
        last_frame = s.end // self.cfg.frame_samples - 1
        audio_end_wall = next((w for i, w in reversed(self.arrivals[channel]) if i == last_frame), endpoint_wall)
        uid, seq = self._id(channel)
        del self.open_ids[channel]
        return Utterance(
            stream_id=self.stream_id,
            utterance_id=uid,
            seq=seq,
            channel=channel,
            speaker=self.speaker(channel),
            start_s=s.start / SAMPLE_RATE,
            end_s=s.end / SAMPLE_RATE,
            audio=s.audio,
            audio_end_wall=audio_end_wall,
            endpoint_wall=endpoint_wall,
            split=s.split,
            latency_ms={"endpoint": elapsed_ms(audio_end_wall, endpoint_wall)},
        )
