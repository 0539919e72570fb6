"""The self-check: the pack's paths run in this ComfyUI, on tiny random-weight models made in memory,
against float64 reference implementations of the formulas (`render.py --self-check`)."""
