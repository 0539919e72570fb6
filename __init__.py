"""AnimateLCM Fast Video: ComfyUI imports this file from custom_nodes/<folder>/.

Importing registers the model folders and the node classes; nothing heavy happens here
(no model is read until a node runs).
"""
try:
    import folder_paths  # noqa: F401  (there whenever ComfyUI imports the pack)
except ImportError:  # imported outside ComfyUI: the renderer's --server/--ray driver, or a pip install
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}
else:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .weights.model_folders import register_model_folders

    register_model_folders()

WEB_DIRECTORY = "./web"  # warnings.js: shows the nodes' warnings in the browser

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
