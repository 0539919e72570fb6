"""Node classes of the pack, gathered for ComfyUI. Each module lists its own nodes."""
from . import lora_nodes, motion_nodes, sampler_nodes, video_nodes

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

for _module in (motion_nodes, sampler_nodes, lora_nodes, video_nodes):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
