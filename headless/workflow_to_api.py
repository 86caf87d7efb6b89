"""Convert a workflow saved by ComfyUI's frontend (UI / LiteGraph format) to the API prompt format.

The API format is what the host's executor runs: {node_id: {"class_type", "inputs", "_meta"}}.
Widget values are stored in the UI format as a bare list (`widgets_values`), so mapping them to
input names needs each node class's input definitions; they are passed in (`node_classes`, e.g.
the host's `nodes.NODE_CLASS_MAPPINGS`), never hand-kept. This module imports nothing from the
host so that it runs and is tested on its own.

Handled as the frontend's own "queue prompt" does: links, widgets converted to inputs (an input
with a `widget` entry that is linked), the extra `control_after_generate` value after seed-like
widgets, the extra value of upload widgets, muted nodes (mode 2: left out), bypassed nodes (mode
4: each output passes through the input of the same type), frontend-only Reroute, PrimitiveNode
and Note nodes; text widgets marked `dynamicPrompts` get the frontend's comment stripping and
`{a|b|c}` random choices.
"""

from __future__ import annotations

import random
import re
from typing import Any, Mapping

MODE_MUTED = 2
MODE_BYPASSED = 4

# Nodes that exist only in the frontend: never sent to the host.
REROUTE_TYPES = {"Reroute"}
PRIMITIVE_TYPES = {"PrimitiveNode"}
NOTE_TYPES = {"Note", "MarkdownNote"}

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
SEED_NAMES = {"seed", "noise_seed"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "3d_upload")


class WorkflowError(ValueError):
    """The workflow cannot be converted; the message says which node and what to do."""


class MissingNodeError(WorkflowError):
    def __init__(self, node_types: list[str]):
        self.node_types = node_types
        names = ", ".join(sorted(set(node_types)))
        super().__init__(
            f"missing node type(s): {names}. Install the custom node pack that provides them "
            "(e.g. with ComfyUI-Manager) and check that it loaded without errors."
        )


def input_definitions(node_class: Any) -> list[tuple[str, Any, dict]]:
    """(name, type, options) of a node class's inputs in widget order: required, then optional."""
    spec = node_class.INPUT_TYPES() if hasattr(node_class, "INPUT_TYPES") else node_class
    result = []
    for section in ("required", "optional"):
        for name, definition in (spec.get(section) or {}).items():
            if not isinstance(definition, (tuple, list)) or not definition:
                definition = (definition,)
            kind = definition[0]
            options = definition[1] if len(definition) > 1 and isinstance(definition[1], dict) else {}
            result.append((name, kind, options))
    return result


def is_widget(kind: Any, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    if isinstance(kind, (list, tuple)):
        return True
    return isinstance(kind, str) and kind in WIDGET_TYPES


def _has_control_widget(name: str, kind: Any, options: dict) -> bool:
    if options.get("control_after_generate"):
        return True
    return kind == "INT" and name in SEED_NAMES


def _upload_option(options: dict) -> bool:
    return any(options.get(key) for key in UPLOAD_OPTIONS)


_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//.*")


def process_dynamic_prompt(text: str, rng: random.Random) -> str:
    """The frontend's dynamic prompt: C-style comments removed, each {a|b|c} replaced by one
    random option (nested groups allowed, backslash escapes the braces and the bar)."""
    text = _COMMENTS.sub("", text)
    pos = 0

    def choice_block() -> str:
        nonlocal pos
        options, choice, depth = [], "", 0
        while pos < len(text):
            char = text[pos]
            pos += 1
            if char == "\\":
                choice += "\\" + (text[pos] if pos < len(text) else "")
                pos += 1
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if not depth:
                    break
                depth -= 1
            elif char == "|" and not depth:
                options.append(choice)
                choice = ""
                continue
            choice += char
        options.append(choice)
        return process_dynamic_prompt(rng.choice(options), rng)

    out = ""
    while pos < len(text):
        char = text[pos]
        pos += 1
        if char == "\\":
            out += "\\" + (text[pos] if pos < len(text) else "")
            pos += 1
        elif char == "{":
            out += choice_block()
        else:
            out += char
    return re.sub(r"\\([{}|])", r"\1", out)


def widget_slots(node: dict, definitions: list[tuple[str, Any, dict]]) -> dict[str, Any]:
    """Input name -> where its value sits in the node's widgets_values (a list index, or the key
    of the dict form)."""
    values = node.get("widgets_values")
    widgets = [(name, kind, options) for name, kind, options in definitions if is_widget(kind, options)]
    if values is None:
        return {}
    if isinstance(values, dict):
        return {name: name for name, _, _ in widgets if name in values}
    values = list(values)
    slots: dict[str, Any] = {}
    i = 0
    for name, kind, options in widgets:
        if i >= len(values):
            break  # an input added to the node after the workflow was saved: the host default applies
        slots[name] = i
        i += 1
        if _has_control_widget(name, kind, options) and i < len(values) and values[i] in CONTROL_VALUES:
            i += 1
        elif _upload_option(options) and i < len(values) and isinstance(values[i], str) and values[i] in (
            "image", "video", "audio", "3d", ""
        ):
            i += 1
    # Values left over belong to widgets that frontend extensions add after the node's own
    # (previews, buttons); they are not inputs, and the frontend's own conversion skips them too.
    return slots


def widget_inputs(node: dict, definitions: list[tuple[str, Any, dict]], rng: random.Random | None = None) -> dict[str, Any]:
    """Input name -> value for the node's widget values."""
    options_of = {name: options for name, _, options in definitions}
    out: dict[str, Any] = {}
    for name, slot in widget_slots(node, definitions).items():
        value = node["widgets_values"][slot]
        if options_of[name].get("dynamicPrompts") and isinstance(value, str):
            value = process_dynamic_prompt(value, rng or random.Random())
        out[name] = value
    return out


def set_widget_values(workflow: Mapping, values: Mapping[str, Mapping[str, Any]], node_classes: Mapping[str, Any]) -> dict:
    """A copy of a UI-format workflow whose widgets hold `values` ({node_id: {input: value}}), so
    that the workflow embedded in an output shows the settings that made it. Values for inputs
    that are not widgets of the node are left out."""
    import copy

    out = copy.deepcopy(dict(workflow))
    for node in out.get("nodes", []):
        changes = values.get(str(node.get("id")))
        if not changes or node.get("type") not in node_classes:
            continue
        slots = widget_slots(node, input_definitions(node_classes[node["type"]]))
        for name, value in changes.items():
            if name in slots:
                node["widgets_values"][slots[name]] = value
    return out


def _source(nodes_by_id: dict, links: dict, link_id: int, want_type: str | None) -> tuple | None:
    """Follow a link back through reroutes and bypassed nodes.

    Returns ("link", node_id, slot), ("value", value) for a primitive node, or None when the link
    ends at a muted node or a dangling reroute (the input is then left unset, as the frontend does).
    """
    seen = set()
    while link_id is not None:
        if link_id in seen:
            raise WorkflowError(f"link {link_id} is part of a cycle of reroutes or bypassed nodes")
        seen.add(link_id)
        link = links.get(link_id)
        if link is None:
            raise WorkflowError(f"link {link_id} is used by a node but missing from the workflow's links")
        origin_id, origin_slot = link[1], link[2]
        origin = nodes_by_id.get(origin_id)
        if origin is None:
            raise WorkflowError(f"link {link_id} starts at node {origin_id}, which is not in the workflow")
        kind = origin.get("type")
        if kind in PRIMITIVE_TYPES:
            values = origin.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if kind in REROUTE_TYPES:
            link_id = _first_input_link(origin)
            continue
        mode = origin.get("mode", 0)
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASSED:
            link_id = _bypass_input_link(origin, origin_slot, want_type or link[5])
            continue
        return ("link", origin_id, origin_slot)
    return None


def _first_input_link(node: dict) -> int | None:
    for inp in node.get("inputs") or []:
        if inp.get("link") is not None:
            return inp["link"]
    return None


def _types_match(a: Any, b: Any) -> bool:
    if a == b or "*" in (a, b):
        return True
    set_a = set(str(a).split(",")) if a else set()
    set_b = set(str(b).split(",")) if b else set()
    return bool(set_a & set_b)


def _bypass_input_link(node: dict, slot: int, out_type: Any) -> int | None:
    """A bypassed node passes the input of its output's type through: same slot first, then any."""
    inputs = node.get("inputs") or []
    if slot < len(inputs) and inputs[slot].get("link") is not None and _types_match(inputs[slot].get("type"), out_type):
        return inputs[slot]["link"]
    for inp in inputs:
        if inp.get("link") is not None and _types_match(inp.get("type"), out_type):
            return inp["link"]
    return None


def check_workflow_shape(workflow: Any) -> None:
    """Refuse JSON that is not a workflow (a list, nodes that are not a list of objects, ...) with a
    WorkflowError saying what is wrong, before anything reads it."""
    if not isinstance(workflow, Mapping):
        raise WorkflowError(f"not a ComfyUI workflow: the file holds a JSON {type(workflow).__name__}, not an object")
    if "nodes" in workflow or "links" in workflow:
        nodes, links = workflow.get("nodes"), workflow.get("links")
        if not isinstance(nodes, list) or not all(isinstance(n, Mapping) and "id" in n and "type" in n for n in nodes):
            raise WorkflowError("not a ComfyUI workflow: 'nodes' must be a list of nodes, each with an id and a type")
        if not isinstance(links, list) or not all(isinstance(k, (list, Mapping)) for k in links):
            raise WorkflowError("not a ComfyUI workflow: 'links' must be a list of links")
    elif not all(isinstance(v, Mapping) and "class_type" in v for v in workflow.values()):
        raise WorkflowError("not a ComfyUI workflow: it has neither 'nodes' and 'links' nor API-format nodes")


def workflow_to_api(workflow: Mapping, node_classes: Mapping[str, Any], rng: random.Random | None = None) -> dict[str, dict]:
    """The API prompt of a UI-format workflow. `node_classes`: class_type -> node class (or INPUT_TYPES dict);
    `rng` picks the options of dynamic prompts (default: a fresh random generator, as the frontend)."""
    rng = rng or random.Random()
    check_workflow_shape(workflow)
    if "nodes" not in workflow or "links" not in workflow:
        if all(isinstance(v, dict) and "class_type" in v for v in workflow.values()):
            return {str(k): dict(v) for k, v in workflow.items()}  # already an API prompt
        raise WorkflowError("not a ComfyUI workflow: it has neither 'nodes' and 'links' nor API-format nodes")
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowError("workflows with subgraphs are not supported here: unpack the subgraphs in ComfyUI first")

    nodes_by_id = {node["id"]: node for node in workflow["nodes"]}
    links = {}
    for link in workflow["links"]:
        if isinstance(link, dict):  # the frontend's object form of a link
            link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link.get("type")]
        links[link[0]] = link

    frontend_only = REROUTE_TYPES | PRIMITIVE_TYPES | NOTE_TYPES
    active = [n for n in workflow["nodes"] if n.get("type") not in frontend_only and n.get("mode", 0) not in (MODE_MUTED, MODE_BYPASSED)]
    missing = [n["type"] for n in active if n["type"] not in node_classes]
    if missing:
        raise MissingNodeError(missing)

    prompt: dict[str, dict] = {}
    for node in sorted(active, key=lambda n: n.get("order", 0)):
        definitions = input_definitions(node_classes[node["type"]])
        known = {name for name, _, _ in definitions}
        inputs = widget_inputs(node, definitions, rng)
        for inp in node.get("inputs") or []:
            if inp.get("link") is None:
                continue
            name = inp.get("widget", {}).get("name") or inp["name"]
            if name not in known:
                raise WorkflowError(f"node {node['id']} ({node['type']}) has a link into '{name}', an input it does not define")
            source = _source(nodes_by_id, links, inp["link"], inp.get("type"))
            if source is None:
                continue  # a muted source: a widget keeps its own value, a socket stays unset
            if source[0] == "value":
                inputs[name] = source[1]
            else:
                inputs[name] = [str(source[1]), source[2]]
        title = node.get("title") or node["type"]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}
    return prompt
