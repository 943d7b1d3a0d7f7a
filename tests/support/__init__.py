"""Test support: dialogue builders with exact ground truth, and real broker / socket collectors."""
