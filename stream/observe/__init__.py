"""Watching streams run: per-stream metrics and their Prometheus export (metrics.py), the terminal view
(live_view.py)."""
