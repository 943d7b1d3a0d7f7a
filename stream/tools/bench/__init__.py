"""``emo-bench``: streaming latency and throughput of emo-stream, side by side with a naive pipeline (issue 6).

What it measures, and why it is built this way:

- **Real-time streams** (N = 1, 2, 4, 8, 16): N dialogues replayed at real-time pace through ``run_streams`` in
  one process, exactly as ``emo-stream --realtime`` runs them, with an in-memory publisher that stamps each
  event's arrival. Each configuration runs in its own subprocess, so peak RSS and CPU use belong to it alone.
- **Fast replay**: the same, as fast as the pipeline takes the audio: throughput in audio seconds per second.
- **Naive pipeline**: the same code with faster-whisper's defaults (30 s window, beam 5, no partials), so the
  gain of the streaming tricks is a ratio measured on the same machine at the same time.
- **ASR levers**: decode time and WER of Whisper alone on ground-truth-cut turns, per encoder window and thread
  count, so the window setting is chosen by word error rate, not by guess.

Every latency figure comes with the word error rate of the final transcripts of the same run: a faster setting
that mishears is not a win. The pipeline's own ``end_to_end`` field starts when the last voiced frame reached the
pipeline; the bench also times each final event against the wall clock of the paced source ("live" latency),
which additionally counts any time the source was held back by a slow pipeline (back-pressure).
"""
