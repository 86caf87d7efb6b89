"""The UI-to-API workflow converter against hand-checked graphs (no host needed)."""

import pytest

from headless import prompt_overrides as overrides
from headless.workflow_to_api import MissingNodeError, WorkflowError, workflow_to_api

SEED = ("INT", {"default": 0, "min": 0, "max": 2**64 - 1, "control_after_generate": True})

NODE_DEFS = {
    "Loader": {"required": {"ckpt_name": (["a.safetensors", "b.safetensors"],)}},
    "Encode": {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)}},
    "Sampler": {
        "required": {
            "model": ("MODEL",),
            "seed": SEED,
            "steps": ("INT", {"default": 20}),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "sampler_name": (["euler", "ddim"],),
        },
        "optional": {"strength": ("FLOAT", {"default": 1.0}), "mask": ("MASK",)},
    },
    "Filter": {"required": {"model": ("MODEL",), "amount": ("FLOAT", {})}},
    "LoadImage": {"required": {"image": (["x.png"], {"image_upload": True})}},
    "Save": {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}},
    "Forced": {"required": {"value": ("INT", {"forceInput": True}), "label": ("STRING", {})}},
}


def node(id, type, inputs=(), outputs=(), widgets=None, mode=0, order=0, title=None):
    n = {"id": id, "type": type, "mode": mode, "order": order,
         "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs]}
    if widgets is not None:
        n["widgets_values"] = widgets
    if title:
        n["title"] = title
    return n


def inp(name, type, link=None, widget=False):
    d = {"name": name, "type": type, "link": link}
    if widget:
        d["widget"] = {"name": name}
    return d


def out(name, type, links):
    return {"name": name, "type": type, "links": links}


def base_graph():
    """Loader -> Filter (bypassed) -> Reroute -> Sampler; Encode x2; Primitive -> steps; a Note; a muted Save."""
    nodes = [
        node(1, "Loader", outputs=[out("MODEL", "MODEL", [1]), out("CLIP", "CLIP", [2, 3])], widgets=["b.safetensors"]),
        node(2, "Encode", [inp("clip", "CLIP", 2)], [out("CONDITIONING", "CONDITIONING", [4])], ["a cat"], order=1, title="Positive"),
        node(3, "Encode", [inp("clip", "CLIP", 3)], [out("CONDITIONING", "CONDITIONING", [5])], ["blurry"], order=1),
        node(4, "Filter", [inp("model", "MODEL", 1), inp("amount", "FLOAT", None, widget=True)],
             [out("MODEL", "MODEL", [6])], [0.5], mode=4, order=2),
        node(5, "Reroute", [inp("", "*", 6)], [out("", "MODEL", [7])], order=3),
        node(6, "PrimitiveNode", [], [out("INT", "INT", [8])], [33, "fixed"], order=0),
        node(7, "Sampler",
             [inp("model", "MODEL", 7), inp("positive", "CONDITIONING", 4), inp("negative", "CONDITIONING", 5),
              inp("seed", "INT", None, widget=True), inp("steps", "INT", 8, widget=True)],
             [out("IMAGE", "IMAGE", [9, 10])], [123, "randomize", 20, "ddim", 0.75], order=4),
        node(8, "Note", widgets=["a note"]),
        node(9, "Save", [inp("images", "IMAGE", 9)], [], ["muted"], mode=2, order=5),
        node(10, "Save", [inp("images", "IMAGE", 10)], [], ["stereo/out"], order=5),
    ]
    links = [
        [1, 1, 0, 4, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
        [4, 2, 0, 7, 1, "CONDITIONING"], [5, 3, 0, 7, 2, "CONDITIONING"], [6, 4, 0, 5, 0, "MODEL"],
        [7, 5, 0, 7, 0, "MODEL"], [8, 6, 0, 7, 4, "INT"], [9, 7, 0, 9, 0, "IMAGE"], [10, 7, 0, 10, 0, "IMAGE"],
    ]
    return {"nodes": nodes, "links": links, "version": 0.4}


def test_links_widgets_seed_control_bypass_reroute_primitive_mute_and_notes():
    prompt = workflow_to_api(base_graph(), NODE_DEFS)
    assert set(prompt) == {"1", "2", "3", "7", "10"}  # bypassed, reroute, primitive, note, muted: gone
    assert prompt["1"] == {"class_type": "Loader", "inputs": {"ckpt_name": "b.safetensors"}, "_meta": {"title": "Loader"}}
    assert prompt["2"]["inputs"] == {"text": "a cat", "clip": ["1", 1]}
    assert prompt["2"]["_meta"]["title"] == "Positive"
    assert prompt["7"]["inputs"] == {
        "model": ["1", 0],          # through the reroute and the bypassed Filter
        "seed": 123,                # "randomize" after it is the control widget, not a value
        "steps": 33,                # the primitive node's value wins over the widget's
        "positive": ["2", 0],
        "negative": ["3", 0],
        "sampler_name": "ddim",
        "strength": 0.75,
    }
    assert prompt["10"]["inputs"] == {"images": ["7", 0], "filename_prefix": "stereo/out"}


def test_seed_without_a_saved_control_value_and_dict_widget_values():
    graph = base_graph()
    sampler = next(n for n in graph["nodes"] if n["id"] == 7)
    sampler["widgets_values"] = [5, 20, "euler", 1.0]
    assert workflow_to_api(graph, NODE_DEFS)["7"]["inputs"]["sampler_name"] == "euler"
    sampler["widgets_values"] = {"seed": 9, "steps": 4, "sampler_name": "euler"}
    inputs = workflow_to_api(graph, NODE_DEFS)["7"]["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["sampler_name"]) == (9, 33, "euler")


def test_upload_widget_value_and_force_input_are_skipped():
    graph = {
        "nodes": [
            node(1, "LoadImage", [], [out("IMAGE", "IMAGE", [])], ["photo.png", "image"]),
            node(2, "Forced", [inp("value", "INT", None)], [], ["hello"]),
        ],
        "links": [],
    }
    prompt = workflow_to_api(graph, NODE_DEFS)
    assert prompt["1"]["inputs"] == {"image": "photo.png"}
    assert prompt["2"]["inputs"] == {"label": "hello"}


def test_bypassed_node_passes_the_input_of_the_same_type():
    graph = base_graph()
    filt = next(n for n in graph["nodes"] if n["id"] == 4)
    filt["mode"] = 0
    prompt = workflow_to_api(graph, NODE_DEFS)
    assert prompt["7"]["inputs"]["model"] == ["4", 0]
    assert prompt["4"]["inputs"] == {"model": ["1", 0], "amount": 0.5}


def test_missing_node_type_is_named():
    graph = base_graph()
    graph["nodes"][0]["type"] = "SomePackLoader"
    with pytest.raises(MissingNodeError, match="SomePackLoader") as info:
        workflow_to_api(graph, NODE_DEFS)
    assert info.value.node_types == ["SomePackLoader"]


def test_values_of_widgets_added_by_frontend_extensions_are_ignored():
    graph = base_graph()
    graph["nodes"][0]["widgets_values"] = ["a.safetensors", ""]  # e.g. a preview widget's value
    assert workflow_to_api(graph, NODE_DEFS)["1"]["inputs"] == {"ckpt_name": "a.safetensors"}


def test_api_format_passes_through_and_garbage_is_refused():
    api = {"3": {"class_type": "Loader", "inputs": {"ckpt_name": "a.safetensors"}}}
    assert workflow_to_api(api, NODE_DEFS) == api
    with pytest.raises(WorkflowError, match="not a ComfyUI workflow"):
        workflow_to_api({"hello": 1}, NODE_DEFS)


def test_overrides_follow_conditioning_to_the_prompt_nodes():
    prompt = workflow_to_api(base_graph(), NODE_DEFS)
    changed = overrides.apply(prompt, checkpoint="a.safetensors", prompt="a dog", negative="ugly", seed=7,
                              sets=["Positive.clip=[\"1\", 1]", "10.filename_prefix=run"])
    assert changed["1"]["inputs"]["ckpt_name"] == "a.safetensors"
    assert changed["2"]["inputs"]["text"] == "a dog" and changed["3"]["inputs"]["text"] == "ugly"
    assert changed["7"]["inputs"]["seed"] == 7
    assert changed["10"]["inputs"]["filename_prefix"] == "run"
    assert prompt["2"]["inputs"]["text"] == "a cat"  # the original is untouched
    with pytest.raises(overrides.OverrideError, match="no node with id, title or name"):
        overrides.apply(prompt, sets=["Nope.text=x"])
    with pytest.raises(overrides.OverrideError, match="LoadImage"):
        overrides.set_image(prompt, "x.png")


def test_dynamic_prompts_are_resolved_like_the_frontend_does():
    import random

    from headless.workflow_to_api import process_dynamic_prompt

    rng = random.Random(0)
    assert process_dynamic_prompt("a cat // not this\n/* nor\nthis */on a mat", rng) == "a cat \non a mat"
    assert process_dynamic_prompt(r"literal \{braces\} and \| bar", rng) == "literal {braces} and | bar"
    seen = {process_dynamic_prompt("a {red|blue|{light|dark} green} house", rng) for _ in range(200)}
    assert seen == {"a red house", "a blue house", "a light green house", "a dark green house"}

    defs = {"Encode": {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True})}},
            "Plain": {"required": {"text": ("STRING", {})}}}
    graph = {"nodes": [node(1, "Encode", widgets=["{x|x} // c"]), node(2, "Plain", widgets=["{x|y} // c"])], "links": []}
    prompt = workflow_to_api(graph, defs, random.Random(1))
    assert prompt["1"]["inputs"]["text"] == "x " and prompt["2"]["inputs"]["text"] == "{x|y} // c"
