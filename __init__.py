"""AnimateLCM Fast Video: ComfyUI imports this file from custom_nodes/<folder>/.

Importing registers the model folders and the node classes; nothing heavy happens here
(no model is read until a node runs).
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .weights.model_folders import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
