"""Checks on node inputs that ComfyUI's own validation does not make.

ComfyUI's min/max check lets NaN through (every comparison with NaN is false), and an infinite
value can arrive through the API; either turns a video into NaN or crashes far from the input.
"""
import math


def require_finite(node, **values):
    """Refuse any non-finite float among `values`, naming the node and the input."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{node}: '{name}' is {value}; it must be a finite number.")
