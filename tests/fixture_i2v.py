"""An independent AnimateLCM-I2V image encoder, written from the official Adapter's formulas (float64):
the self-check's oracle (selfcheck/oracles.py)."""
from fixture_selfcheck import oracles

sinusoid = oracles.sinusoid
reference_encoder = oracles.image_encoder
