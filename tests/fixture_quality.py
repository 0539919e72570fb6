"""Frames with known motion for the quality tests: a smooth texture moved by exact (sub-pixel) shifts,
and seams injected at chosen frame pairs."""
import numpy as np


def texture(size, dx=0.0, dy=0.0, seed=1):
    """A smooth RGB texture (sums of low-frequency sinusoids) shifted by exactly (dx, dy) pixels, as uint8:
    every shift, sub-pixel ones too, is the same picture moved."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    generator = np.random.default_rng(seed)
    picture = np.zeros((size, size, 3))
    for channel in range(3):
        for _ in range(12):
            fx, fy = generator.uniform(-0.06, 0.06, 2)
            picture[..., channel] += np.cos(2 * np.pi * (fx * (x - dx) + fy * (y - dy)) + generator.uniform(0, 6.3))
    return (np.clip(picture / 12 + 0.5, 0, 1) * 255).round().astype(np.uint8)


def moving(frames, size=64, step=(0.3, 0.0), seed=1):
    """`frames` frames of the texture, each moved by `step` pixels from the one before."""
    return [texture(size, step[0] * t, step[1] * t, seed) for t in range(frames)]


def with_seams(frames, seams, seed=5):
    """The frames with a faint pattern that changes at each seam t (between frames t-1 and t): a jump there,
    nothing anywhere else."""
    patterns = np.random.default_rng(seed).normal(0, 6, (len(seams) + 1, *frames[0].shape))
    segment = np.searchsorted(seams, np.arange(len(frames)), side="right")
    return [np.clip(f + patterns[s], 0, 255).astype(np.uint8) for f, s in zip(frames, segment)]
