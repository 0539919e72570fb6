"""Video quality measured without model weights: how much a video flickers, how well each frame follows
from the one before along its motion, how much it moves, and whether it jumps where context windows
meet or where a loop closes.

measures.py holds the per-pair maths (VBench's temporal flickering; Lai et al.'s warping error on
OpenCV's DIS optical flow), seams.py the frames where context windows meet, report.py one video's
report (means, worst frames, seam scores, as JSON), plot.py its per-frame curves and sheet.py a
contact sheet of several videos. Frames are 8-bit RGB numpy arrays ([H, W, 3] uint8), as a video
file holds them: the engine needs numpy, OpenCV and Pillow (and the pack's context windows), not
ComfyUI.
"""
