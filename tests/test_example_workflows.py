"""Every shipped workflow, converted by the pack's own converter and run by the host's executor with
tiny models that the host loads through its ordinary loaders; and the files still match the nodes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import host_harness
import tiny_checkpoints

SHIPPED = host_harness.PACK_DIR / "examples_workflows"
WORKFLOWS = sorted(p.stem for p in SHIPPED.glob("*.json"))
TINY_DEPTH = "tiny_depth_anything_v2.safetensors"
STEPS = 3
SIZE = 64


def load_builder():
    path = host_harness.PACK_DIR / "tools" / "build_example_workflows.py"
    spec = importlib.util.spec_from_file_location("stereo_build_example_workflows", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workflows_are_shipped_with_thumbnails_and_reachable_as_example_workflows():
    assert {"text_to_stereo", "photo_to_stereo", "depth_to_stereo"} <= set(WORKFLOWS), WORKFLOWS
    link = host_harness.PACK_DIR / "example_workflows"
    assert link.resolve() == SHIPPED.resolve()
    for name in WORKFLOWS:
        assert (link / f"{name}.json").is_file()
        with Image.open(SHIPPED / f"{name}.jpg") as thumb:  # the template browser asks for <name>.jpg
            assert thumb.format == "JPEG" and thumb.width >= 128


@pytest.fixture(scope="module")
def converter(pack):
    return host_harness.pack_submodule(pack, "headless.workflow_to_api")


@pytest.fixture(scope="module")
def comfy_host(pack):
    return host_harness.pack_submodule(pack, "headless.comfy_host")


@pytest.fixture(scope="module")
def models(host):
    import tiny_depth

    with tiny_checkpoints.fp32_text_encoders():
        tiny = tiny_checkpoints.tiny_models()
        depth = tiny.root / "depthanything" / TINY_DEPTH
        if not depth.exists():
            tiny_depth.write_tiny_depth_anything(depth)
        tiny_checkpoints.register_model_root(tiny.root)
        yield tiny


@pytest.fixture(scope="module")
def io_dirs(host, tmp_path_factory):
    import folder_paths

    root = tmp_path_factory.mktemp("workflow-io")
    (root / "in").mkdir()
    (root / "out").mkdir()
    y, x = np.mgrid[0:80, 0:96]
    photo = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], -1).clip(0, 255).astype(np.uint8)  # a smooth "photo" / depth ramp
    Image.fromarray(photo).save(root / "in" / "example.png")
    old = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    folder_paths.set_input_directory(str(root / "in"))
    folder_paths.set_output_directory(str(root / "out"))
    yield root
    folder_paths.set_input_directory(old[0])
    folder_paths.set_output_directory(old[1])


@pytest.fixture(scope="module")
def executor(comfy_host):
    """One executor for all workflows, as one server would: unchanged nodes come from its cache."""
    return comfy_host.new_executor()


def tiny_overrides(prompt: dict, models, sdxl: bool) -> dict:
    """Point the workflow at the tiny models and make it small; everything else is as shipped."""
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = models.sdxl if sdxl else models.sd15
        if "control_net_name" in inputs:
            inputs["control_net_name"] = models.controlnet
        if kind == "StereoDisparityModelLoader":
            inputs["model_name"] = f"depthanything/{TINY_DEPTH}"
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


@pytest.mark.parametrize("name", WORKFLOWS)
def test_shipped_workflow_runs_end_to_end_in_the_host(name, converter, comfy_host, executor, models, io_dirs):
    import nodes

    workflow = json.loads((SHIPPED / f"{name}.json").read_text())
    prompt = converter.workflow_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
    active = [n for n in workflow["nodes"] if n["type"] not in ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")]
    assert set(prompt) == {str(n["id"]) for n in active}
    prompt = tiny_overrides(prompt, models, sdxl="sdxl" in name)
    before = set((io_dirs / "out").rglob("*.png"))

    outputs = comfy_host.run_prompt(prompt, executor)

    ran = set(executor.caches.outputs.all_node_ids())
    assert set(prompt) <= ran, f"nodes that did not run: {set(prompt) - ran}"
    for node_id, node in prompt.items():
        if getattr(nodes.NODE_CLASS_MAPPINGS[node["class_type"]], "OUTPUT_NODE", False):
            assert outputs.get(node_id), f"output node {node_id} ({node['class_type']}) produced nothing"
    written = set((io_dirs / "out").rglob("*.png")) - before
    pairs = [f for f in written if f.name.startswith(name)]  # StereoSaveImage: stereo/<name>_00001_<layout>.png
    assert len(pairs) == 1, sorted(f.name for f in written)
    with Image.open(pairs[0]) as image:
        sbs = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert sbs.shape == (SIZE, 2 * SIZE, 3)  # parallel side by side: left | right
    left, right = sbs[:, :SIZE], sbs[:, SIZE:]
    assert np.abs(left - right).mean() > 0.5, "the right view is a copy of the left one"


def test_shipped_workflows_match_the_node_definitions(pack):
    """The files are what tools/build_example_workflows.py makes from today's nodes (no drift)."""
    import nodes

    builder = load_builder()
    built = builder.build_all(nodes.NODE_CLASS_MAPPINGS, WORKFLOWS)
    for name in WORKFLOWS:
        shipped = (SHIPPED / f"{name}.json").read_text()
        assert builder.dump(built[name]) == shipped, (
            f"examples_workflows/{name}.json no longer matches the nodes: run tools/build_example_workflows.py"
        )
