"""Random-weight stand-ins: model files in the exact layouts users download (SD1.5 checkpoints, AnimateLCM
motion modules and LoRAs, SVD-xt, ControlNets, SparseCtrl), filled with random numbers.

Below both users of them: the renderer's `--stand-ins` writes them as files for the models a workflow names
and the user lacks (files.py), and the self-check builds tiny ones in memory. Nothing here imports the
renderer or the self-check."""
