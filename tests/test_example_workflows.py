"""Every shipped workflow, converted by the pack's own converter and run by the host's executor with
tiny models that the host loads through its ordinary loaders; and the files still match the nodes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from headless import comfy_host, prompt_execution, workflow_to_api
from headless.run_workflow import workflow_key
from testkit import tiny_checkpoints
from testkit.host_folders import host_folders
from tools import build_example_workflows

SHIPPED = comfy_host.PACK_DIR / "examples_workflows"
WORKFLOWS = sorted(p.stem for p in SHIPPED.glob("*.json"))  # file names: the titles users see
STEPS = 3
SIZE = 64


def test_workflows_are_shipped_with_thumbnails_under_the_runners_names():
    assert {workflow_key(t) for t in WORKFLOWS} == \
        {"text_to_stereo", "photo_to_stereo", "depth_to_stereo", "sdxl_text_to_stereo", "flux_text_to_stereo",
         "flux_photo_to_stereo", "video_to_stereo", "photo_warp_inpaint",
         "video_to_stereo_fast"}, WORKFLOWS
    assert set(build_example_workflows.WORKFLOWS) == {workflow_key(t) for t in WORKFLOWS}
    for name in WORKFLOWS:
        with Image.open(SHIPPED / f"{name}.jpg") as thumb:  # the template browser asks for <name>.jpg
            assert thumb.format == "JPEG" and thumb.width >= 128


def ensure_host_extra_nodes(pack) -> None:
    """The host's comfy_extras nodes (Image Composite Masked, ...), which a real server loads."""
    import nodes

    if "ImageCompositeMasked" not in nodes.NODE_CLASS_MAPPINGS:
        loading = nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False)
        if asyncio.iscoroutine(loading):  # on a thread of its own: the browser tests run an event loop here
            worker = threading.Thread(target=asyncio.run, args=(loading,))
            worker.start()
            worker.join()


@pytest.fixture(scope="module")
def converter(pack):
    ensure_host_extra_nodes(pack)
    return workflow_to_api


@pytest.fixture(scope="module")
def models(host):
    return tiny_checkpoints.tiny_models()


@pytest.fixture(scope="module")
def io_dirs(host, tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow-io")
    with host_folders(root):
        y, x = np.mgrid[0:96, 0:96]
        photo = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], -1).clip(0, 255).astype(np.uint8)  # a smooth "photo" / depth ramp
        Image.fromarray(photo).save(root / "in" / "example.png")
        yield root


@pytest.fixture(scope="module")
def executor(pack):
    """One executor for all workflows, as one server would: unchanged nodes come from its cache."""
    return prompt_execution.new_executor()


def tiny_overrides(prompt: dict, models, sdxl: bool) -> dict:
    """Point the workflow at the tiny models and make it small; everything else is as shipped."""
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = models.sdxl if sdxl else models.sd15
        if "control_net_name" in inputs:
            inputs["control_net_name"] = models.controlnet
        if kind == "UNETLoader":
            inputs["unet_name"] = models.flux_unet
        if kind == "DualCLIPLoader":
            inputs["clip_name1"], inputs["clip_name2"] = models.flux_clip_l, models.flux_t5
        if kind == "VAELoader":
            inputs["vae_name"] = models.flux_vae
        if kind == "StereoDisparityModelLoader":
            inputs["model_name"] = models.depth_model_name
            inputs["download_if_missing"] = False
        if "steps" in inputs:
            inputs["steps"] = STEPS
        if "inner_steps" in inputs:
            inputs["inner_steps"] = 1
        if kind in ("EmptyLatentImage", "ImageScale"):
            inputs["width"] = SIZE
            inputs["height"] = SIZE if inputs.get("height") else 0
        if kind == "StereoEstimateDisparity":
            inputs["resolution"] = 56
    return prompt


@pytest.mark.parametrize("name", [w for w in WORKFLOWS if not w.lower().startswith("video")])  # a video elsewhere
def test_shipped_workflow_runs_end_to_end_in_the_host(name, converter, executor, models, io_dirs):
    import nodes

    workflow = json.loads((SHIPPED / f"{name}.json").read_text())
    prompt = converter.workflow_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
    active = [n for n in workflow["nodes"] if n["type"] not in ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")]
    assert set(prompt) == {str(n["id"]) for n in active}
    prompt = tiny_overrides(prompt, models, sdxl=workflow_key(name).startswith("sdxl"))
    before = set((io_dirs / "out").rglob("*.png"))

    outputs = prompt_execution.run_prompt(prompt, executor)

    ran = set(executor.caches.outputs.all_node_ids())
    assert set(prompt) <= ran, f"nodes that did not run: {set(prompt) - ran}"
    for node_id, node in prompt.items():
        if getattr(nodes.NODE_CLASS_MAPPINGS[node["class_type"]], "OUTPUT_NODE", False):
            assert outputs.get(node_id), f"output node {node_id} ({node['class_type']}) produced nothing"
    written = set((io_dirs / "out").rglob("*.png")) - before
    pairs = [f for f in written if f.name.startswith(workflow_key(name))]  # stereo/<key>_00001_<layout>.png
    assert len(pairs) == 1, sorted(f.name for f in written)
    with Image.open(pairs[0]) as image:
        sbs = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert sbs.shape == (SIZE, 2 * SIZE, 3)  # parallel side by side: left | right
    left, right = sbs[:, :SIZE], sbs[:, SIZE:]
    assert np.abs(left - right).mean() > 0.5, "the right view is a copy of the left one"


def test_shipped_workflows_match_the_node_definitions(converter):
    """The files hold the widget values that tools/build_example_workflows.py writes for today's
    nodes (no drift: a node that gains, loses or reorders widgets fails here). Output names and
    combo lists differ between host versions, so the comparison is of the converted prompts and
    of each node's widget values."""
    import nodes

    builder = build_example_workflows
    built = builder.build_all(nodes.NODE_CLASS_MAPPINGS)
    assert sorted(built) == WORKFLOWS
    for name in WORKFLOWS:
        shipped = json.loads((SHIPPED / f"{name}.json").read_text())
        hint = f"examples_workflows/{name}.json no longer matches the nodes: run tools/build_example_workflows.py"
        widgets = lambda wf: {n["id"]: (n["type"], n.get("widgets_values")) for n in wf["nodes"]}  # noqa: E731
        assert widgets(built[name]) == widgets(shipped), hint
        assert converter.workflow_to_api(built[name], nodes.NODE_CLASS_MAPPINGS) == \
            converter.workflow_to_api(shipped, nodes.NODE_CLASS_MAPPINGS), hint


def test_runner_turns_a_folder_of_images_into_stereo_pairs(converter, models, host, tmp_path):
    """`python -m headless.run_workflow` from the pack's folder, as on a server without a browser:
    a shipped workflow, a folder of inputs, the tiny models passed as overrides on the command line."""
    import nodes

    name = "photo_to_stereo"
    (path,) = [SHIPPED / f"{t}.json" for t in WORKFLOWS if workflow_key(t) == name]
    shipped = converter.workflow_to_api(json.loads(path.read_text()), nodes.NODE_CLASS_MAPPINGS)
    tiny = tiny_overrides(json.loads(json.dumps(shipped)), models, sdxl=False)
    sets = [f"{node_id}.{key}={json.dumps(value)}" for node_id, node in tiny.items()
            for key, value in node["inputs"].items() if key != "ckpt_name" and shipped[node_id]["inputs"].get(key) != value]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    for stem in ("first", "second"):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(inputs / f"{stem}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "headless.run_workflow", name, "--comfyui", str(host), "--models", str(models.root),
           "--checkpoint", models.sd15, "--images", str(inputs), "--output", str(out), "--prompt", "a castle",
           "--seed", "3", "--cpu", "--no-custom-nodes"] + [arg for s in sets for arg in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    result = subprocess.run(cmd, cwd=comfy_host.PACK_DIR, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    pairs = sorted(p.name for p in out.glob("*.png"))  # directly in --output: the prefix's folder is dropped
    assert [p.split("_00001_")[0] for p in pairs] == [f"{name}_first", f"{name}_second"], pairs
    assert "first.png ->" in result.stdout and "second.png ->" in result.stdout
