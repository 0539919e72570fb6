"""AnimateLCM-SVD-xt: Stable Video Diffusion xt distilled to 1-4 steps (wangfuyun/AnimateLCM-SVD-xt; docs/maths.md#animatelcm-svd-xt).

The released files are diffusers `UNetSpatioTemporalConditionModel` state dicts; `keys` renames them to
ComfyUI's layout, `load` hands them to ComfyUI's own SVD model, `schedule` gives the official sigmas.
"""
