"""Stage: frames of every channel → utterances, one VAD segmenter per channel, numbered in endpoint order."""

from __future__ import annotations

import time
from collections import deque

from emostream.stream.messages import AudioFrame, Utterance
from emostream.stream.stage import Stage, elapsed_ms
from emostream.stream.vad import SAMPLE_RATE, Segment, Segmenter, VadConfig


class Segmentation(Stage[AudioFrame, Utterance]):
    name = "vad"

    def __init__(self, stream_id: str, cfg: VadConfig, speakers: tuple[str, ...]) -> None:
        self.stream_id = stream_id
        self.cfg = cfg
        self.speakers = speakers
        self.segmenters: dict[int, Segmenter] = {}
        # Arrival time of recent frames, to date the end of speech that the hangover confirms later.
        keep = cfg.frames(cfg.hangover_ms) + cfg.frames(cfg.max_utterance_ms) + 2
        self.arrivals: dict[int, deque[tuple[int, float]]] = {}
        self._keep = keep
        self.seq = 0

    def speaker(self, channel: int) -> str:
        return self.speakers[channel] if channel < len(self.speakers) else f"ch{channel}"

    async def process(self, item: AudioFrame) -> list[Utterance]:
        seg = self.segmenters.get(item.channel)
        if seg is None:
            seg = self.segmenters[item.channel] = Segmenter(self.cfg)
            self.arrivals[item.channel] = deque(maxlen=self._keep)
        self.arrivals[item.channel].append((item.index, item.wall))
        return [self._utterance(item.channel, s, time.monotonic()) for s in seg.push(item.samples)]

    async def flush(self) -> list[Utterance]:
        now = time.monotonic()
        return [self._utterance(ch, s, now) for ch, seg in self.segmenters.items() for s in seg.flush()]

    def _utterance(self, channel: int, s: Segment, endpoint_wall: float) -> Utterance:
        last_frame = s.end // self.cfg.frame_samples - 1
        audio_end_wall = next((w for i, w in reversed(self.arrivals[channel]) if i == last_frame), endpoint_wall)
        self.seq += 1
        return Utterance(
            stream_id=self.stream_id,
            utterance_id=f"{self.stream_id}-{self.seq:05d}",
            seq=self.seq,
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
