"""ControlNet hints over a video: checked against its frames, and cut to each context window's frames.

ComfyUI's own controls (ControlNet, T2I-Adapter, Control-LoRA: comfy/controlnet.py) fit their hint to
the batch they are given with `broadcast_image_to`, which takes the hint's *first* frames: run on one
window of a long video, they would steer frames 40-55 with the hints of frames 0-15. So while a
window runs, each such control holds only that window's frames of its hint (and of any per-frame
extra input), and computes its upscaled hint anew; the whole hint is put back when the window ends,
whatever happens, so the CONDITIONING is left as it was.

Advanced-ControlNet's controls cut their hints themselves from the window that `ad_params`
publishes (they carry `sub_idxs`, adv_control/utils.py; AnimateDiff-Evolved tells them apart the
same way): they are left alone.
"""
from contextlib import contextmanager


class HintFramesError(ValueError):
    """A ControlNet hint whose frames do not match the video's."""


def controls_in(conds):
    """Every control object in ComfyUI's conds (lists of cond dicts, or None), chains followed, each once."""
    found, seen = [], set()
    for cond in conds:
        for entry in cond or []:
            control = entry.get("control")
            while control is not None and id(control) not in seen:
                seen.add(id(control))
                found.append(control)
                control = getattr(control, "previous_controlnet", None)
    return found


def controls_of_conditioning(conditioning):
    """Every control object in a CONDITIONING ([[tensor, options], ...]), chains followed."""
    return controls_in([[options for _, options in conditioning]])


def cuts_its_own_hint(control):
    """Advanced-ControlNet's controls read the window from ad_params and cut their hints themselves."""
    return hasattr(control, "sub_idxs")


def _hint_frames(control):
    hint = getattr(control, "cond_hint_original", None)
    return None if hint is None or not hasattr(hint, "shape") or hint.ndim == 0 else hint.shape[0]


def check_hint_frames(controls, frames):
    """Refuse a hint whose frames are neither 1 (one picture for every frame) nor the video's frames.

    ComfyUI would tile a shorter hint and take the first frames of a longer one without a word."""
    for control in controls:
        hint_frames = _hint_frames(control)
        if cuts_its_own_hint(control) or hint_frames in (None, 1, frames):
            continue
        raise HintFramesError(
            f"a ControlNet ({type(control).__name__}) has a hint of {hint_frames} images, but the video has {frames} "
            f"frames. Give it one image (the same hint for every frame) or exactly {frames}, one per frame: load the "
            f"hint video with the same frame_cap/skip_first_frames as the source, or cut it with an image batch "
            f"node; or set the latent to {hint_frames} frames.")


def _per_frame(value, frames):
    return hasattr(value, "shape") and value.ndim > 0 and value.shape[0] == frames and frames > 1


@contextmanager
def hints_of_window(controls, window, frames):
    """While inside, every ComfyUI control with a per-frame hint holds only `window`'s frames of it."""
    kept = []
    try:
        for control in controls:
            if cuts_its_own_hint(control) or not _per_frame(getattr(control, "cond_hint_original", None), frames):
                continue
            extra = list(getattr(control, "extra_concat_orig", None) or [])
            kept.append((control, control.cond_hint_original, extra))
            hint = control.cond_hint_original
            control.cond_hint_original = hint[_index(window, hint)]
            if extra:  # per-frame extra inputs (an inpainting ControlNet's mask) follow the hint
                control.extra_concat_orig = [e[_index(window, e)] if _per_frame(e, frames) else e for e in extra]
            control.cond_hint = None  # the control upscales (and caches) the window's hint anew
        yield
    finally:
        for control, hint, extra in kept:
            control.cond_hint_original = hint
            if extra:
                control.extra_concat_orig = extra
            control.cond_hint = None


def _index(window, tensor):
    import torch
    return torch.tensor(window, dtype=torch.long, device=tensor.device)
