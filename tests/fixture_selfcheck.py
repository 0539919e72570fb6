"""The self-check's float64 oracles and tiny in-memory models (selfcheck/ in the pack): written once, for the
product's `render.py --self-check` and for the tests alike."""
import importlib

import comfy_host

_PACK = comfy_host.start().pack.__name__
oracles = importlib.import_module(_PACK + ".selfcheck.oracles")
models = importlib.import_module(_PACK + ".selfcheck.models")
