"""Long-video nodes: context windows (with FreeNoise), and frame positions past the motion module's encoding."""
from ..motion.context_windows import (
    CONTEXT_KEY,
    FUSE_METHODS,
    SCHEDULES,
    ContextOptions,
)
from ..motion.frame_positions import MODES, POSITIONS_KEY
from ..motion.windowed_conditioning import add_conditioning_windows
from ..svd.schedule import is_svd_model
from .declare import Node, Output


def _with_transformer_option(model, key, value):
    """A clone of the MODEL whose UNet calls carry `value` under `key` (the input MODEL is not changed)."""
    patched = model.clone()
    options = dict(patched.model_options.get("transformer_options", {}))
    options[key] = value
    patched.model_options["transformer_options"] = options
    return patched


class ContextWindows(Node):
    NODE_ID = "ALCM_ContextWindows"
    DISPLAY_NAME = "Context Windows (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The animated MODEL (after 'Apply Motion Module'). It is not changed: "
                                           "a new MODEL that samples long videos window by window comes out."}),
            "context_length": ("INT", {"default": 16, "min": 2, "max": 64, "tooltip":
                                       "Frames the motion module sees at once. 16 is AnimateLCM's training length; "
                                       "videos no longer than this are sampled in one piece, exactly as without "
                                       "this node."}),
            "overlap": ("INT", {"default": 4, "min": 0, "max": 32, "tooltip":
                                "Frames shared by neighbouring windows; more overlap gives smoother seams and "
                                "costs more time (16/4: 1.31x the frames of one pass)."}),
            "schedule": (list(SCHEDULES), {"default": "uniform", "tooltip":
                                           "uniform: the window grid shifts every step, so seams move and vanish "
                                           "(recommended). static: the same windows every step. batched: disjoint "
                                           "windows, no overlap (fastest, visible cuts)."}),
            "closed_loop": ("BOOLEAN", {"default": False, "tooltip":
                                        "Windows wrap from the last frame to the first, so the video loops "
                                        "seamlessly (uniform schedule)."}),
            "fuse": (list(FUSE_METHODS), {"default": "pyramid", "tooltip":
                                          "How overlapping windows are averaged per frame. pyramid: frames near a "
                                          "window's middle count most (recommended). flat: equal weights. "
                                          "overlap-linear: cross-fade over the overlap only."}),
            "freenoise": ("BOOLEAN", {"default": True, "tooltip":
                                      "FreeNoise: later windows start from shuffles of earlier windows' noise, at "
                                      "the start and at every step, so the whole video keeps one subject and "
                                      "scene. Off: independent noise per frame (more change over time)."}),
        }}

    OUTPUTS = (
        Output("MODEL", None, "The MODEL, sampling any number of frames in windows: connect it to the AnimateLCM Sampler."),
    )
    FUNCTION = "apply"
    DESCRIPTION = ("Long videos at flat memory: the motion module runs on overlapping windows of context_length "
                   "frames, averaged per frame; ControlNets run window by window on each window's hint frames, and "
                   "IP-Adapter image batches give each frame its own image. Put it between 'Apply Motion Module' "
                   "and the sampler.")

    def apply(self, model, context_length, overlap, schedule, closed_loop, fuse, freenoise):
        if is_svd_model(model):  # its temporal layers are the UNet's own: nothing here would window them
            raise ValueError("Context Windows (AnimateLCM) window the SD1.5 motion module; this MODEL is "
                             "AnimateLCM-SVD-xt, whose temporal layers always see every frame, so the windows would "
                             "change nothing but the noise. Remove this node: AnimateLCM-SVD-xt makes its frames "
                             "(SVD_img2vid_Conditioning's video_frames, 25 as trained) in one piece.")
        if schedule not in SCHEDULES or fuse not in FUSE_METHODS:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} and fuse one of {', '.join(FUSE_METHODS)}.")
        if overlap >= context_length and schedule != "batched":
            raise ValueError(f"overlap ({overlap}) must be smaller than context_length ({context_length}): "
                             f"windows would never advance. 4 is the recommended overlap for 16-frame windows.")
        if "context_handler" in model.model_options:
            raise ValueError("This MODEL already has ComfyUI's own context windows (the core 'Context Windows' "
                             "node): use one or the other, not both. Remove one of the two nodes.")
        options = ContextOptions(context_length, overlap, schedule, closed_loop, fuse, freenoise)
        windowed = _with_transformer_option(model, CONTEXT_KEY, options)
        add_conditioning_windows(windowed)  # where the host allows: ControlNets run window by window too
        return (windowed,)


class ExtendFramePositions(Node):
    NODE_ID = "ALCM_ExtendFramePositions"
    DISPLAY_NAME = "Extend Frame Positions (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The animated MODEL (after 'Apply Motion Module'). It is not changed."}),
            "positions": (list(MODES), {"default": "interpolate", "tooltip":
                                        "For videos longer than the motion module's position encoding, in one "
                                        "window. interpolate: spread the frames over the positions it was made "
                                        "for (slower motion). extrapolate: continue the sinusoid past its end. "
                                        "Context Windows is usually the better way to long videos."}),
        }}

    OUTPUTS = (
        Output("MODEL", None, "The MODEL, accepting more frames than its motion module's position encoding covers."),
    )
    FUNCTION = "apply"
    DESCRIPTION = ("Lets the motion module take more frames than its position encoding covers (64 for AnimateLCM, "
                   "24/32 for AnimateDiff) by extrapolating or interpolating frame positions.")

    def apply(self, model, positions):
        if positions not in MODES:
            raise ValueError(f"positions must be one of {', '.join(MODES)}, not '{positions}'.")
        return (_with_transformer_option(model, POSITIONS_KEY, positions),)
