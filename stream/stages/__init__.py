"""The per-stream stages: each stream has its own, with their state, joined by bounded queues (stage.py).

They run in this order (pipeline.py wires them; brackets: only when configured so):

1. ``segmentation.Segmentation`` (vad.py's endpointer): AudioFrame → Utterance, EndCandidate, PartialAudio
2. [``confirmation.SileroConfirmation``, ``vad.confirm_with_silero``]: drops an Utterance Silero hears no speech in
3. [``diarization.SpeakerLabelling``, mono streams with ``speakers.enabled``]: speaker of each Utterance
   (speakers.py)
4. ``acoustic.AcousticFeatures``: Utterance → Acoustic (EndCandidate: features started on the guess)
5. [``functionals.UtteranceFunctionals``, bundles with utterance functionals]: Acoustic → Acoustic with them
   appended (fed the PartialAudio and EndCandidates that go by while the utterance is spoken)
6. [``speaker_normalisation.SpeakerNormalisation``, bundles trained with it]: Acoustic → Acoustic
7. ``inference.EarlyEstimate``: the audio-only estimate event at the endpoint, Acoustic passed on
8. ``transcription.Transcription`` (agreement.py for partials): Acoustic → Transcribed, and Speculated, partials
9. ``embedding.TextEmbedding``: Transcribed → Embedded
10. ``context.ContextBuffer``: Embedded → InContext
11. ``inference.Inference``: InContext → the fused emotion event

Events (``Outgoing``) pass every later stage untouched. Models stay behind the shared services (stream/services).
"""
