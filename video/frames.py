"""IMAGE frames one at a time: play order (pingpong), 8-bit conversion and frame timing.

Encoders never see the whole batch converted: each frame becomes uint8 just before it is written,
so saving holds one extra frame, not a second copy of the video.
"""
import torch


def play_order(frame_count, pingpong):
    """Frame indices in the order they are written: pingpong adds the way back without repeating
    either end (0 1 2 3 2 1), so a looping player shows no frame twice in a row: 2N - 2 frames."""
    forward = range(frame_count)
    if not pingpong or frame_count < 3:
        return list(forward)
    return list(forward) + list(range(frame_count - 2, 0, -1))


def frame_uint8(images, index):
    """One IMAGE frame ([H, W, 3] float 0-1) as a contiguous uint8 numpy array."""
    frame = images[index, :, :, :3]
    if frame.shape[-1] == 1:  # a grey IMAGE
        frame = frame.expand(-1, -1, 3)
    return (frame.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def durations(frame_count, fps, unit):
    """Per-frame display times in `unit` seconds (1000: ms, 100: GIF's centiseconds).

    Rounding each frame alone drifts (8 fps in centiseconds is 12.5): rounding the running time
    instead gives 12, 13, 12, 13... whose mean is exact.
    """
    step = unit / fps
    times = [round(i * step) for i in range(frame_count + 1)]
    return [max(1, b - a) for a, b in zip(times, times[1:])]
