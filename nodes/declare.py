"""One declaration per node, on its class: the id saved workflows name it by (never changed), its name in the
node menu, its category, inputs (INPUT_TYPES, in the order saved workflows store their widget values) and
outputs with their tooltips. The pack's registration (nodes/__init__.py) is built from the declared classes,
as AnimateDiff-Evolved keeps NodeID/NodeName on its classes.

ComfyUI reads the classic attributes (RETURN_TYPES, RETURN_NAMES, OUTPUT_TOOLTIPS), which every ComfyUI since
2023 loads; `Node` writes them from OUTPUTS, so a node's outputs are said once.
"""
from typing import NamedTuple


class Output(NamedTuple):
    type: str  # ComfyUI's type name: "MODEL", "LATENT", ...
    name: str  # the output's label; None shows the type, as ComfyUI does without RETURN_NAMES
    tooltip: str


class Node:
    NODE_ID = None  # "ALCM_...": what workflows store as the node's type
    DISPLAY_NAME = None  # the name in the node menu and on the node
    OUTPUTS = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.NODE_ID or not cls.NODE_ID.startswith("ALCM_") or not cls.DISPLAY_NAME:
            raise TypeError(f"{cls.__name__}: a node declares NODE_ID ('ALCM_...') and DISPLAY_NAME")
        cls.RETURN_TYPES = tuple(output.type for output in cls.OUTPUTS)
        cls.RETURN_NAMES = tuple(output.name or output.type for output in cls.OUTPUTS)
        cls.OUTPUT_TOOLTIPS = tuple(output.tooltip for output in cls.OUTPUTS)


def nodes_of(module):
    """The node classes a module declares, in the order it declares them."""
    return [value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Node) and value is not Node
            and value.__module__ == module.__name__]
