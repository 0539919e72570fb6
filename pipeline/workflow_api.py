"""Workflows as the ComfyUI frontend saves them ("UI format"), turned into the API-format prompts
ComfyUI's executor runs, and checked against the node definitions of the running host.

The UI format keeps a node's widget values as a bare list (`widgets_values`), in the order the node
declares its widget inputs, so reading it needs the live definitions (nodes.NODE_CLASS_MAPPINGS):
a workflow is always read against the ComfyUI that will run it: the one in this process, or a
server's /object_info (both give a catalog: {class_type: {"input": INPUT_TYPES(), "output": RETURN_TYPES}}).
"""
import enum
from collections.abc import Mapping

DROPPED = {"Note", "MarkdownNote"}  # comments: nothing to run
VIRTUAL = {"Reroute", "PrimitiveNode"}  # frontend-only: resolved through their links
SEED_NAMES = {"seed", "noise_seed"}  # the frontend adds a seed control to these by name, too
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}  # the inputs the frontend draws as widgets
WEIGHT_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".gguf")
MUTED, BYPASSED = 2, 4  # LiteGraph node modes


class WorkflowError(ValueError):
    """The workflow cannot be turned into a prompt; the message says which node and why."""


class LiveCatalog(Mapping):
    """The node definitions of the ComfyUI running in this process, in /object_info's shape."""

    def __init__(self):
        import nodes  # ComfyUI's nodes.py, importable once ComfyUI has started in this process
        self.classes = nodes.NODE_CLASS_MAPPINGS
        self.display_names = nodes.NODE_DISPLAY_NAME_MAPPINGS

    def __getitem__(self, class_type):
        cls = self.classes[class_type]
        return {"input": cls.INPUT_TYPES(), "output": list(getattr(cls, "RETURN_TYPES", ())),
                "display_name": self.display_names.get(class_type, class_type)}

    def __iter__(self):
        return iter(self.classes)

    def __len__(self):
        return len(self.classes)


def _definitions(catalog=None):
    return LiveCatalog() if catalog is None else catalog


def _kind(kind):
    """An input or output type as a string: lists of choices are COMBOs; v0.3.64's IO enums are str-valued."""
    if isinstance(kind, (list, tuple)):
        return "COMBO"
    return kind.value if isinstance(kind, enum.Enum) else kind


def _declared(class_type, catalog=None):
    """[(name, kind, options)] of a node's inputs in declaration order: required, then optional."""
    types = _definitions(catalog)[class_type]["input"]
    out = []
    for section in ("required", "optional"):
        for name, spec in types.get(section, {}).items():
            options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(spec[0], (list, tuple)):  # old-style COMBO: the choices are the type
                options["options"] = list(spec[0])
            out.append((name, _kind(spec[0]), options))
    return out


def declared_inputs(class_type, catalog=None):
    """{input name: (kind, options)} of a node type."""
    return {name: (kind, options) for name, kind, options in _declared(class_type, catalog)}


def widget_values(node, catalog=None):
    """{input name: value} of a node's widgets, read from widgets_values in declaration order."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):  # some extension nodes save their widgets by name
        return dict(values)
    out, i = {}, 0
    for name, kind, options in _declared(node["type"], catalog):
        if kind not in WIDGET_KINDS or options.get("forceInput"):
            continue
        if i >= len(values):  # a widget the file predates (the node gained it later): the frontend's default
            if "default" in options or options.get("options"):
                out[name] = options.get("default", (options.get("options") or [None])[0])
            continue
        out[name] = values[i]  # a widget converted to a socket keeps its slot here too
        i += 1
        if options.get("control_after_generate") or (kind == "INT" and name in SEED_NAMES):
            i += 1  # the frontend's "control after generate" value (fixed/randomize/...) follows
    return out  # values past the declared widgets (an image-upload button's) are not inputs


def _links(workflow):
    """{link id: (from node, from slot, to node, to slot, type)}, from either saved form of links."""
    out = {}
    for link in workflow.get("links", []):
        if isinstance(link, dict):
            link = [link[k] for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")]
        out[link[0]] = tuple(link[1:6])
    return out


def _source(nodes, links, link_id):
    """What feeds a link: [node id, slot], a PrimitiveNode's constant, or None (muted or dangling)."""
    while link_id in links:
        origin, slot = links[link_id][:2]
        node = nodes.get(origin)
        if node is None or node.get("mode") == MUTED:
            return None  # the frontend leaves such an input out of the prompt too
        if node["type"] == "Reroute":  # a reroute passes its one input through
            link_id = node["inputs"][0].get("link")
            continue
        if node["type"] == "PrimitiveNode":
            return node["widgets_values"][0]
        return [str(origin), slot]
    return None


def to_api(workflow, catalog=None):
    """The API-format prompt ({"<id>": {"class_type", "inputs"}}) of a UI-format workflow."""
    catalog = _definitions(catalog)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = _links(workflow)
    bypassed = [f"{n['id']} ({n['type']})" for n in nodes.values() if n.get("mode") == BYPASSED]
    if bypassed:  # rewiring around them is not supported: say so rather than run another graph
        raise WorkflowError(f"bypassed nodes are not supported, un-bypass or delete them: {', '.join(bypassed)}")
    unknown = sorted({n["type"] for n in nodes.values()} - DROPPED - VIRTUAL - set(catalog))
    if unknown:
        raise WorkflowError(f"unknown node types (a custom node pack that is not installed?): {', '.join(unknown)}")
    prompt = {}
    for node in nodes.values():
        if node["type"] in DROPPED | VIRTUAL or node.get("mode") == MUTED:
            continue
        inputs = widget_values(node, catalog)
        for entry in node.get("inputs", []):
            source = _source(nodes, links, entry.get("link"))
            if source is not None:  # a link wins over the widget value of a converted widget
                inputs[entry["name"]] = source
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def _fits(link_type, kind):
    """ComfyUI's type match: equal, "*" on either side, or a shared member of "A,B" unions."""
    link_type, kind = str(_kind(link_type)), str(_kind(kind))
    return "*" in (link_type, kind) or bool(set(link_type.split(",")) & set(kind.split(",")))


def _bad_value(name, value, kind, options):
    """Why a widget value is invalid for its input, or None."""
    if kind == "COMBO":
        choices = options.get("options")
        if choices is None or value in choices:
            return None  # a list fetched by the frontend at run time is not checked here
        if options.get("video_upload") or options.get("image_upload"):
            return None  # a file of the input folder: it differs between machines, as model files do
        # Model files differ between machines (stand-ins are made for missing ones), so a folder
        # listing (all weight files, or empty) or a *_name input only refuses a non-weight-file
        # value; sampler_name is a *_name input too, but "lcm" is no file name and is checked.
        folder_listing = all(str(c).lower().endswith(WEIGHT_EXTENSIONS) for c in choices)
        if str(value).lower().endswith(WEIGHT_EXTENSIONS) and (folder_listing or name.endswith("_name")):
            return None
        return f"{value!r} is not a model file name" if folder_listing else f"{value!r} is not one of {choices}"
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        low, high = options.get("min", float("-inf")), options.get("max", float("inf"))
        if not low <= value <= high:
            return f"{value} is outside [{low}, {high}]"
    return None


def check_workflow(workflow):
    """Problems that would stop or change a run in this host, as readable strings (empty: none)."""
    definitions = _definitions()
    nodes = {node["id"]: node for node in workflow["nodes"]}
    known = {i: n for i, n in nodes.items() if n["type"] in definitions}
    declared = {i: declared_inputs(n["type"]) for i, n in known.items()}
    problems = []
    for i, node in nodes.items():
        label = f"node {i} ({node['type']})"
        if node.get("mode") == BYPASSED:
            problems.append(f"{label}: bypassed, which the renderer does not rewire")
        if i not in known:
            if node["type"] not in DROPPED | VIRTUAL:
                problems.append(f"{label}: unknown node type (a custom node pack that is not installed?)")
            continue
        linked = {e["name"] for e in node.get("inputs", []) if e.get("link") is not None}
        for name, value in widget_values(node).items():
            if name in linked or name not in declared[i]:
                continue  # a linked widget's stored value is not used
            problem = _bad_value(name, value, *declared[i][name])
            if problem:
                problems.append(f"{label} {name}: {problem}")
    for link_id, (origin, slot, target, target_slot, link_type) in _links(workflow).items():
        where = f"link {link_id} ({origin}:{slot} -> {target}:{target_slot}, {link_type})"
        if origin not in nodes or target not in nodes:
            problems.append(f"{where}: joins a node that is not in the workflow")
            continue
        if origin in known:  # frontend-only ends (reroutes, primitives) take any type
            outputs = definitions[nodes[origin]["type"]]["output"]
            if slot >= len(outputs) or not _fits(link_type, outputs[slot]):
                got = _kind(outputs[slot]) if slot < len(outputs) else "nothing"
                problems.append(f"{where}: the source output is {got}")
        if target in known:
            name = nodes[target]["inputs"][target_slot]["name"]
            if name not in declared[target]:
                problems.append(f"{where}: {nodes[target]['type']} has no input '{name}'")
            elif not _fits(link_type, declared[target][name][0]):
                problems.append(f"{where}: input '{name}' takes {declared[target][name][0]}")
    return problems
