"""Emotion models served by emo-stream: one interface, several architectures, one bundle format."""
