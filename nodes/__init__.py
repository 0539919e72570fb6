"""Node classes of the pack, gathered for ComfyUI: each module's declared nodes (nodes/declare.py) registered by
their ids and display names.

A module whose third-party library is missing (a ComfyUI without OpenCV or PyAV) is left out
with a message naming the pip package to install; the other modules' nodes still load.
"""
import importlib
import logging

from .declare import nodes_of

log = logging.getLogger(__name__)

NODE_MODULES = {  # module: what it holds, in the words of the node menu
    "motion_nodes": "the motion-module nodes",
    "motion_lora_nodes": "Load Motion LoRA (AnimateLCM)",
    "context_nodes": "the long-video nodes (Context Windows, Extend Frame Positions)",
    "sampler_nodes": "the AnimateLCM sampler nodes",
    "prompt_nodes": "Prompt Schedule (AnimateLCM)",
    "freeinit_nodes": "FreeInit Options (AnimateLCM)",
    "lora_nodes": "the LoRA nodes",
    "video_nodes": "Save Video and Load Video (AnimateLCM)",
    "i2v_nodes": "AnimateLCM Image to Video and Match Colors to Image",
    "svd_nodes": "the AnimateLCM-SVD-xt nodes",
    "control_nodes": "Canny Edges (AnimateLCM)",
    "keyframe_nodes": "the SparseCtrl keyframe nodes",
    "quality_nodes": "Video Quality (AnimateLCM)",
}
# import name -> pip name, where they differ
PIP_NAMES = {"cv2": "opencv-python", "PIL": "Pillow", "av": "av", "yaml": "pyyaml"}

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

_PACK = __name__.rsplit(".", 1)[0]
for _name, _nodes in NODE_MODULES.items():
    try:
        _module = importlib.import_module(f".{_name}", __name__)
    except ModuleNotFoundError as error:
        if not error.name or error.name == _PACK or error.name.startswith(_PACK + "."):  # the pack's own: a bug
            raise
        _pip = PIP_NAMES.get(error.name.split(".")[0], error.name.split(".")[0])
        log.error("AnimateLCM Fast Video: %s are disabled because the Python package '%s' is missing: install it "
                  "into the Python that runs ComfyUI (`python -m pip install %s`, or the pack's requirements.txt) "
                  "and restart ComfyUI.", _nodes, _pip, _pip)
        continue
    for _node in nodes_of(_module):
        if _node.NODE_ID in NODE_CLASS_MAPPINGS:
            raise RuntimeError(f"two nodes declare the id {_node.NODE_ID}")
        NODE_CLASS_MAPPINGS[_node.NODE_ID] = _node
        NODE_DISPLAY_NAME_MAPPINGS[_node.NODE_ID] = _node.DISPLAY_NAME
