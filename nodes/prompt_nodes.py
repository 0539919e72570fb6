"""Prompt Schedule: a prompt that changes over the frames of one video (prompt travel)."""
import logging

from ..prompts.conditioning import schedule_conditioning
from ..prompts.schedule import INTERPOLATIONS
from .declare import Node, Output

log = logging.getLogger(__name__)
NODE = "Prompt Schedule (AnimateLCM)"
EXAMPLE = ("0: a fox sleeping in the snow\n"
           "16: a fox waking up in the snow\n"
           "32: a fox running through the snow\n"
           "48: a fox running into a pine forest")
TEXT_TOOLTIP = (
    "One keyframe per line, 'frame: prompt' (the A1111 AnimateDiff format: lines before the first keyframe and after "
    "the last are added to every prompt). Also read: FizzNodes' '\"0\": \"prompt\",' (JSON strings: \\u00e9 and \\\" "
    "are decoded) and AnimateDiff-Evolved's '0 = \"prompt\",'. Frames: 16; -1 (the last frame); 0.5 (half-way); 0:12 "
    "(frames 0-11 hold the prompt); 16: (held until the next keyframe, no blend). Before the first keyframe the first "
    "prompt shows, after the last the last. (word:1.2) weighting works as in CLIP Text Encode. FizzNodes' '--neg' "
    "splits a prompt: what follows it goes to the 'negative' output. A keyframe past the last frame is allowed (a "
    "story rendered in parts) and named in a warning. Refused with the line: two keyframes on one frame, a line that "
    "is not an entry (also one that looks like a mistyped keyframe, '4 - a forest'), FizzNodes' `expressions` "
    "(nothing is evaluated), an empty schedule.")
FRAMES_TOOLTIP = (
    "Frames of the video. Ignored when a latent is connected: then its batch size is the frame count (connect the "
    "sampler's latent, so the two always match). Each output holds frames x tokens x 768 values (0.23 MiB a frame "
    "for prompts up to 75 tokens, twice that up to 150): over 2 GiB (about 9,000 frames of short prompts) is "
    "refused; render a longer story in parts with start_frame.")


class PromptSchedule(Node):
    NODE_ID = "ALCM_PromptSchedule"
    DISPLAY_NAME = NODE
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {"tooltip": "The checkpoint's CLIP (text encoder)."}),
            "text": ("STRING", {"multiline": True, "default": EXAMPLE, "tooltip": TEXT_TOOLTIP}),
            "pre_text": ("STRING", {"multiline": True, "default": "", "tooltip":
                                    "Put before every prompt (style, quality words): 'pre_text, prompt'. With "
                                    "'--neg', what follows it goes before every negative."}),
            "app_text": ("STRING", {"multiline": True, "default": "", "tooltip":
                                    "Put after every prompt: 'prompt, app_text'. With '--neg', what follows it goes "
                                    "after every negative."}),
            "frames": ("INT", {"default": 16, "min": 1, "max": 100000, "tooltip": FRAMES_TOOLTIP}),
            "start_frame": ("INT", {"default": 0, "min": 0, "max": 1000000, "tooltip":
                                    "The story frame this video starts at. 0 for a whole video; for a long story "
                                    "rendered in parts, the first frame of this part (e.g. 64 for the second part of "
                                    "64 frames), so the schedule continues instead of restarting. Negative and "
                                    "fractional frames need 0 here."}),
            "interpolation": (list(INTERPOLATIONS), {"default": "linear", "tooltip":
                                                     "linear: frames between keyframes blend the two prompts' "
                                                     "encodings, so the video travels smoothly. none: each prompt "
                                                     "holds until the next keyframe (cuts)."}),
        }, "optional": {
            "latent": ("LATENT", {"tooltip": "Takes the frame count from this latent's batch size (Empty Latent "
                                             "Image, or Image to Video's latent) instead of 'frames'."}),
        }}

    OUTPUTS = (
        Output("CONDITIONING", "CONDITIONING", "One conditioning per frame: connect it to the sampler's positive (or negative) input, with a "
                                               "latent of as many frames."),
        Output("CONDITIONING", "negative", "The schedule's negative: the parts after FizzNodes' '--neg' (and after '--neg' in pre_text and "
                                           "app_text), one conditioning per frame, blended like the positive. Without any '--neg', the "
                                           "empty prompt (as CLIP Text Encode gives it, one row for every frame)."),
    )
    FUNCTION = "encode"
    DESCRIPTION = ("Prompt travel: a prompt that changes over the video. Each distinct prompt is encoded once; frames "
                   "between keyframes blend the encodings. Works with Context Windows (each window gets its frames).")

    def encode(self, clip, text, pre_text, app_text, frames, start_frame, interpolation, latent=None):
        if clip is None:
            raise ValueError(f"{NODE}: 'clip' is empty: connect a checkpoint's CLIP (this checkpoint has no text "
                             "encoder).")
        if latent is not None:
            frames = latent["samples"].shape[0]
        scheduled = schedule_conditioning(clip, text, frames, start_frame, pre_text, app_text, interpolation)
        outputs, late = (scheduled.positive, scheduled.negative), scheduled.late
        if not late:
            return outputs
        named = ", ".join(f"{k.frame} (line {k.line})" for k in late)
        many = len(late) > 1
        warning = (f"{NODE}: keyframe{'s' if many else ''} {named} after this video's last frame "
                   f"({start_frame + frames - 1}) {'are' if many else 'is'} never reached: the video ends before "
                   f"{'them' if many else 'it'}. Right for a story rendered in parts (render the next part with "
                   f"start_frame {start_frame + frames}); otherwise give the video more frames or move the keyframes.")
        log.warning("%s", warning)
        # the pack's web/warnings.js shows it on screen
        return {"result": outputs, "ui": {"animatelcm_warnings": [warning]}}
