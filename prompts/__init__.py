"""Prompt engine: prompt schedules (prompt travel) read into keyframes and encoded as per-frame CONDITIONING."""
