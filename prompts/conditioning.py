"""A prompt schedule as ComfyUI CONDITIONING with one row per frame.

Each distinct prompt is encoded once with ComfyUI's own CLIP (tokenize + encode_from_tokens, so `(word:1.2)`
weighting and embeddings work as in CLIP Text Encode); frames between keyframes are blends of those
encodings. The result is ComfyUI's plain CONDITIONING, [[cond [frames, tokens, 768], {"pooled_output":
[frames, 768]}]]: a sampler whose latent batch equals the frames applies it row by row (comfy.utils
repeat_to_batch_size leaves an equal batch alone), and the pack's Context Windows cut it to each window.
"""
import math

import torch

from .schedule import blend, keyframes, past_the_end


def encode(clip, prompt):
    """(cond [1, tokens, C], pooled [1, C] or None): what CLIP Text Encode gives for `prompt`."""
    cond, pooled = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True)
    return cond, pooled


def _to_length(cond, tokens):
    """`cond` repeated along the tokens to `tokens` (a multiple of its length): a prompt over 75 tokens is
    encoded in 77-token chunks, and repeating keys and values leaves cross-attention unchanged (ComfyUI's
    own CONDCrossAttn.concat pads this way)."""
    return cond.repeat(1, tokens // cond.shape[1], 1) if cond.shape[1] != tokens else cond


def blended(encodings, plan):
    """[frames, ...] rows: encodings[first] where the weight is 0 (exactly), else (1-w)·first + w·second."""
    stacked = torch.cat(encodings)
    first, second = torch.tensor(plan.first), torch.tensor(plan.second)
    weight = torch.tensor(plan.weight, dtype=stacked.dtype)
    rows = stacked[first]
    moving = torch.nonzero(weight).flatten()
    if moving.numel():
        w = weight[moving].view(-1, *[1] * (stacked.ndim - 1))
        rows[moving] = stacked[first[moving]] * (1 - w) + stacked[second[moving]] * w
    return rows


def schedule_conditioning(clip, text, frames, start_frame=0, pre_text="", app_text="", interpolation="linear"):
    """(CONDITIONING with one row per frame, the keyframes past this video's end)."""
    points = keyframes(text, frames, start_frame, pre_text, app_text, interpolation)
    plan = blend(points, frames, start_frame)
    conds, pooleds = zip(*(encode(clip, prompt) for prompt in plan.prompts))
    tokens = math.lcm(*(c.shape[1] for c in conds))
    extra = {}
    if all(p is not None for p in pooleds):
        extra["pooled_output"] = blended([p.reshape(1, -1) for p in pooleds], plan)
    conditioning = [[blended([_to_length(c, tokens) for c in conds], plan), extra]]
    return conditioning, past_the_end(points, frames, start_frame)
