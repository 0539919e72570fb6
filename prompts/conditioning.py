"""A prompt schedule as ComfyUI CONDITIONING with one row per frame.

Each distinct prompt a frame of this video shows is encoded once with ComfyUI's own CLIP (tokenize +
encode_from_tokens, so `(word:1.2)` weighting and embeddings work as in CLIP Text Encode); frames between
keyframes are blends of those encodings, made where CLIP hands them back (the GPU under --gpu-only). The
result is ComfyUI's plain CONDITIONING, [[cond [frames, tokens, 768], {"pooled_output": [frames, 768]}]]: a
sampler whose latent batch equals the frames applies it row by row (comfy.utils repeat_to_batch_size leaves
an equal batch alone), and the pack's Context Windows cut it to each window.
"""
import math
from dataclasses import dataclass

import comfy.model_management
import comfy.utils
import torch

from .schedule import blend, has_negative, keyframes, past_the_end

# The most one output may hold: about 9,000 frames of one-chunk prompts (0.23 MiB a frame), which no single
# sampling of SD1.5 video gets near; a whole story longer than that is rendered in parts (start_frame).
MAX_BYTES = 2 * 2 ** 30
BLEND_BYTES = 16 * 2 ** 20  # blended rows worked out at once (the temporaries beside the result)


@dataclass
class Scheduled:
    positive: list  # CONDITIONING, one row per frame
    negative: list  # CONDITIONING of the --neg parts: one row per frame, or the empty prompt's one row
    late: list  # the keyframes after this video's last frame


def encode(clip, prompt):
    """(cond [1, tokens, C], pooled [1, C] or None): what CLIP Text Encode gives for `prompt`."""
    cond, pooled = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True)
    return cond, pooled


def common_length(lengths):
    """The token count every row is brought to (docs/maths.md): the least common multiple of the prompts'
    lengths when that is at most twice the longest (each prompt repeated whole: cross-attention reads it as the
    prompt itself), else the longest's (the others repeated whole as often as they fit, then zero rows)."""
    longest, every = max(lengths), math.lcm(*lengths)
    return every if every <= 2 * longest else longest


def to_length(cond, tokens):
    """`cond` [1, n, C] brought to `tokens` rows: repeated whole, then zero rows for what is left over."""
    whole = cond.repeat(1, tokens // cond.shape[1], 1) if cond.shape[1] != tokens else cond
    missing = tokens - whole.shape[1]
    return torch.nn.functional.pad(whole, (0, 0, 0, missing)) if missing else whole


def check_size(frames, tokens, sample):
    """Refuse, before it is made, a conditioning of `frames` rows of `tokens` tokens like `sample` over MAX_BYTES."""
    width = sample.shape[-1]
    size = frames * (tokens + 1) * width * sample.element_size()  # the tokens and the pooled row
    if size > MAX_BYTES:
        raise ValueError(
            f"{frames} frames x {tokens} tokens x {width} values ({str(sample.dtype).removeprefix('torch.')}) make a "
            f"conditioning of {size / 2 ** 30:.1f} GiB, over the {MAX_BYTES // 2 ** 30} GiB this node builds at once. "
            "Use fewer frames, shorter prompts (each 75 tokens more add 77 to every frame), or render the story in "
            "parts: several videos of fewer frames, each with start_frame set to its first frame.")


def encode_all(clip, prompts, frames):
    """[(cond, pooled)] of each prompt: Cancel is honoured between encodes, progress shown when there are several,
    and a conditioning that would be too large is refused as soon as one prompt shows it."""
    progress = comfy.utils.ProgressBar(len(prompts)) if len(prompts) > 1 else None
    encodings = []
    for prompt in prompts:
        comfy.model_management.throw_exception_if_processing_interrupted()
        encodings.append(encode(clip, prompt))
        check_size(frames, max(c.shape[1] for c, _ in encodings), encodings[-1][0])
        if progress is not None:
            progress.update(1)
    return encodings


def blended(encodings, plan):
    """[frames, ...] rows, made on the encodings' device: encodings[first] where the weight is 0 (exactly), else
    (1 - w)·first + w·second, worked out a few MiB of rows at a time (the result is the only large tensor)."""
    stacked = torch.cat(encodings)
    device, shape = stacked.device, (-1, *[1] * (stacked.ndim - 1))
    rows = stacked.index_select(0, torch.tensor(plan.first, device=device))
    moving = [frame for frame, w in enumerate(plan.weight) if w]
    at_once = max(1, BLEND_BYTES // (stacked[0].numel() * stacked.element_size()))
    for start in range(0, len(moving), at_once):
        frames = moving[start:start + at_once]
        first, second = (stacked.index_select(0, torch.tensor([side[f] for f in frames], device=device))
                         for side in (plan.first, plan.second))
        w = torch.tensor([plan.weight[f] for f in frames], dtype=stacked.dtype, device=device).view(shape)
        rows.index_copy_(0, torch.tensor(frames, device=device), first * (1 - w) + second * w)
    return rows


def _conditioning(plan, encoded, frames):
    conds, pooleds = zip(*(encoded[prompt] for prompt in plan.prompts))
    tokens = common_length([c.shape[1] for c in conds])
    check_size(frames, tokens, conds[0])
    extra = {}
    if all(p is not None for p in pooleds):
        extra["pooled_output"] = blended([p.reshape(1, -1) for p in pooleds], plan)
    return [[blended([to_length(c, tokens) for c in conds], plan), extra]]


def schedule_conditioning(clip, text, frames, start_frame=0, pre_text="", app_text="", interpolation="linear"):
    """The schedule's CONDITIONING (positive and negative) for this video's frames, and its late keyframes."""
    points = keyframes(text, frames, start_frame, pre_text, app_text, interpolation)
    plan = blend(points, frames, start_frame)
    negative_plan = blend(points, frames, start_frame, negative=True) if has_negative(points) else None
    prompts = list(dict.fromkeys(plan.prompts + (negative_plan.prompts if negative_plan else [""])))
    encoded = dict(zip(prompts, encode_all(clip, prompts, frames)))
    if negative_plan:
        negative = _conditioning(negative_plan, encoded, frames)
    else:  # what CLIP Text Encode gives for an empty prompt: one row, which samplers apply to every frame
        cond, pooled = encoded[""]
        negative = [[cond, {} if pooled is None else {"pooled_output": pooled}]]
    return Scheduled(_conditioning(plan, encoded, frames), negative, past_the_end(points, frames, start_frame))
