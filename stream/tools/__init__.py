"""Developer and operator tools, not part of the runtime: ``emo-bench`` (bench/), the soak test (soak.py) and
the speaker-threshold calibration (speakers_calibrate.py)."""
