"""Overrides of an API prompt for the headless runner: checkpoint, prompts, seed, input image, any input."""

from __future__ import annotations

import copy
import json

TEXT_INPUTS = ("text", "text_g", "text_l")
SEED_INPUTS = ("seed", "noise_seed")
# Conditioning nodes that pass a prompt through (ControlNet apply, area, combine, ...).
PASS_THROUGH_INPUTS = ("conditioning", "conditioning_1", "conditioning_to", "cond")


class OverrideError(ValueError):
    pass


def _nodes_with_input(prompt: dict, name: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if name in node["inputs"]]


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def prompt_text_nodes(prompt: dict, role: str) -> list[str]:
    """Text encoder nodes whose conditioning reaches a sampler's `role` input ("positive" or "negative")."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [node["inputs"][role] for node in prompt.values() if _is_link(node["inputs"].get(role))]
    while stack:
        link = stack.pop()
        node_id = link[0]
        if node_id in seen or node_id not in prompt:
            continue
        seen.add(node_id)
        inputs = prompt[node_id]["inputs"]
        if any(isinstance(inputs.get(k), str) for k in TEXT_INPUTS):
            found.append(node_id)
            continue
        for key in (role, *PASS_THROUGH_INPUTS):
            if _is_link(inputs.get(key)):
                stack.append(inputs[key])
    return sorted(found, key=_id_key)


def _id_key(node_id: str):
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def _set_all(prompt: dict, names: tuple[str, ...] | str, value, what: str) -> None:
    names = (names,) if isinstance(names, str) else names
    hits = [(node_id, name) for name in names for node_id in _nodes_with_input(prompt, name)
            if not _is_link(prompt[node_id]["inputs"][name])]
    if not hits:
        raise OverrideError(f"{what}: the workflow has no node with a {' or '.join(names)} input to set")
    for node_id, name in hits:
        prompt[node_id]["inputs"][name] = value


def _set_text(prompt: dict, role: str, text: str, what: str) -> None:
    node_ids = prompt_text_nodes(prompt, role)
    if not node_ids:
        raise OverrideError(f"{what}: no text prompt node feeds a sampler's {role} input in this workflow")
    for node_id in node_ids:
        for key in TEXT_INPUTS:
            if isinstance(prompt[node_id]["inputs"].get(key), str):
                prompt[node_id]["inputs"][key] = text


def _node_names(prompt: dict, node_id: str, display_names: dict) -> list[str]:
    """What a user may call a node: its title, the node name shown on it, its type."""
    node = prompt[node_id]
    kind = node["class_type"]
    return [n for n in (node.get("_meta", {}).get("title"), display_names.get(kind), kind) if n]


def _describe(prompt: dict, display_names: dict) -> str:
    return "; ".join(f"{node_id}: {_node_names(prompt, node_id, display_names)[0]}"
                     for node_id in sorted(prompt, key=_id_key))


def find_node(prompt: dict, ref: str, display_names: dict | None = None) -> str:
    """The id of the node that `ref` names: a node id, a title, the node's displayed name
    (e.g. "Stereo Null-Text Inversion") or its type (e.g. "StereoNullTextInversion"); exact
    spelling first, then ignoring case. More than one match is an error that lists them."""
    if ref in prompt:
        return ref
    display_names = display_names or {}
    for same in (lambda a, b: a == b, lambda a, b: a.casefold() == b.casefold()):
        matches = [node_id for node_id in prompt if any(same(n, ref) for n in _node_names(prompt, node_id, display_names))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(sorted(matches, key=_id_key))
            raise OverrideError(f"--set: {len(matches)} nodes are called {ref!r} (ids {ids}); use the id of the one you mean")
    raise OverrideError(
        f"--set: no node with id, title or name {ref!r}. The workflow's nodes: {_describe(prompt, display_names)}"
    )


def parse_assignment(assignment: str) -> tuple[str, str, str]:
    """(node reference, input name, raw value) of a NODE.INPUT=VALUE; its syntax needs no host, so
    the runner checks it before starting one."""
    target, sep, raw = assignment.partition("=")
    ref, dot, name = target.rpartition(".")
    if not sep or not dot or not ref or not name:
        raise OverrideError(f"--set {assignment!r}: expected NODE.INPUT=VALUE, e.g. 3.steps=30 or \"KSampler.steps=30\"")
    return ref, name, raw


def set_input(prompt: dict, assignment: str, display_names: dict | None = None, input_names: dict | None = None) -> None:
    """Apply one NODE.INPUT=VALUE; VALUE is parsed as JSON when it is valid JSON, else taken as text.
    `input_names` (class_type -> input names), when given, rejects inputs the node does not have."""
    ref, name, raw = parse_assignment(assignment)
    node_id = find_node(prompt, ref, display_names)
    known = (input_names or {}).get(prompt[node_id]["class_type"])
    if known is not None and name not in known:
        raise OverrideError(
            f"--set {assignment!r}: node {node_id} ({prompt[node_id]['class_type']}) has no input {name!r}; "
            f"its inputs: {', '.join(known)}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    prompt[node_id]["inputs"][name] = value


DEPTH_LOADER = "StereoDisparityModelLoader"


def _set_depth_model(prompt: dict, file_name: str) -> None:
    loaders = [node_id for node_id, node in prompt.items()
               if node["class_type"] == DEPTH_LOADER and not _is_link(node["inputs"].get("model_name"))]
    if not loaders:
        raise OverrideError("--depth-model: the workflow has no Load Disparity Model node to set")
    for node_id in loaders:
        prompt[node_id]["inputs"]["model_name"] = file_name


def apply(api_prompt: dict, *, checkpoint=None, prompt=None, negative=None, seed=None, sets=(),
          display_names: dict | None = None, input_names: dict | None = None, depth_model=None) -> dict:
    """A copy of the API prompt with the given overrides applied (`prompt`: the positive text).
    `display_names` (class_type -> name shown on the node) lets --set name nodes as the UI shows them."""
    out = copy.deepcopy(api_prompt)
    if checkpoint is not None:
        _set_all(out, "ckpt_name", checkpoint, "--checkpoint")
    if prompt is not None:
        _set_text(out, "positive", prompt, "--prompt")
    if negative is not None:
        _set_text(out, "negative", negative, "--negative")
    if seed is not None:
        _set_all(out, SEED_INPUTS, seed, "--seed")
    if depth_model is not None:
        _set_depth_model(out, depth_model)
    for assignment in sets:
        set_input(out, assignment, display_names, input_names)
    return out


def set_image(prompt: dict, image_name: str) -> None:
    """Point the workflow's image loader at image_name (a file in ComfyUI's input folder)."""
    loaders = [node_id for node_id, node in prompt.items() if node["class_type"] == "LoadImage"]
    if len(loaders) != 1:
        raise OverrideError(
            f"--image/--images: the workflow has {len(loaders)} LoadImage nodes; choose one with "
            "--set NODE.image=FILE instead"
        )
    prompt[loaders[0]]["inputs"]["image"] = image_name


def set_filename_prefix(prompt: dict, stem: str) -> None:
    """Name every saved file after the input image, keeping the workflow's own prefix in front."""
    for node_id in _nodes_with_input(prompt, "filename_prefix"):
        prefix = prompt[node_id]["inputs"]["filename_prefix"]
        if isinstance(prefix, str):
            prompt[node_id]["inputs"]["filename_prefix"] = f"{prefix}_{stem}"


def flatten_filename_prefixes(prompt: dict) -> None:
    """Drop the folder part of every filename_prefix ("stereo/photo" -> "photo"), so that the files
    land directly in the folder the user named."""
    for node_id in _nodes_with_input(prompt, "filename_prefix"):
        prefix = prompt[node_id]["inputs"]["filename_prefix"]
        if isinstance(prefix, str):
            prompt[node_id]["inputs"]["filename_prefix"] = prefix.replace("\\", "/").rsplit("/", 1)[-1] or prefix


def changed_inputs(before: dict, after: dict) -> dict[str, dict]:
    """{node_id: {input: value}} of the plain values that differ between two prompts of one graph."""
    changes: dict[str, dict] = {}
    for node_id, node in after.items():
        old = before.get(node_id, {}).get("inputs", {})
        for name, value in node["inputs"].items():
            if not _is_link(value) and (name not in old or old[name] != value):
                changes.setdefault(node_id, {})[name] = value
    return changes
