"""Stand-ins around a real CLIP for the Prompt Schedule's tests: plain wrapper objects (ComfyUI itself is not
patched) that count the encodes, press Cancel during one, or hand the encodings back on another device."""
import contextlib

import torch


class WrappedCLIP:
    """The checkpoint's CLIP, recording each encode's tokens; `on_encode(n)` runs before the n-th encode (1-based)
    and `device` is where the encodings are handed back (as with --gpu-only, where CLIP's output stays on the GPU)."""

    def __init__(self, clip, device=None, on_encode=None):
        self.clip, self.device, self.on_encode, self.encoded = clip, device, on_encode, []

    def tokenize(self, text, **kwargs):
        return self.clip.tokenize(text, **kwargs)

    def encode_from_tokens(self, tokens, return_pooled=False, **kwargs):
        self.encoded.append(tokens)
        if self.on_encode is not None:
            self.on_encode(len(self.encoded))
        cond, pooled = self.clip.encode_from_tokens(tokens, return_pooled=True, **kwargs)
        if self.device is not None:
            cond, pooled = cond.to(self.device), pooled.to(self.device)
        return (cond, pooled) if return_pooled else cond


def cancel_at(encode):
    """An on_encode that presses Cancel (what the UI's button does) before the encode numbered `encode`."""
    def press(n):
        if n == encode:
            import comfy.model_management
            comfy.model_management.interrupt_current_processing(True)
    return press


@contextlib.contextmanager
def stand_in_clip_node(calls):
    """A test-only node ALCM_TestCLIP (CLIP + how → the CLIP wrapped: "meta" hands encodings back on the meta
    device, "cancel at 2" presses Cancel before the second encode), each wrapper appended to `calls`."""
    import comfy.model_management
    import nodes

    class TestCLIP:
        RETURN_TYPES, FUNCTION, CATEGORY = ("CLIP",), "wrap", "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"clip": ("CLIP",), "how": (["count", "meta", "cancel at 2"],)}}

        @classmethod
        def IS_CHANGED(cls, **kwargs):
            return float("nan")  # run every time: each run's wrapper counts that run's encodes

        def wrap(self, clip, how):
            wrapped = WrappedCLIP(clip, device=torch.device("meta") if how == "meta" else None,
                                  on_encode=cancel_at(2) if how == "cancel at 2" else None)
            calls.append(wrapped)
            return (wrapped,)
    nodes.NODE_CLASS_MAPPINGS["ALCM_TestCLIP"] = TestCLIP
    try:
        yield
    finally:
        del nodes.NODE_CLASS_MAPPINGS["ALCM_TestCLIP"]
        comfy.model_management.interrupt_current_processing(False)  # a test that failed may leave Cancel pressed
