"""Every shipped workflow in the real frontend (headless Chromium on a real ComfyUI server): it
loads without missing nodes, the frontend's own conversion equals the pack's converter, and the
server accepts and runs the prompt the frontend makes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import host_harness
import tiny_checkpoints
from browser_harness import comfy_page, comfy_server  # noqa: F401  (fixtures)
from test_example_workflows import SHIPPED, TINY_DEPTH, WORKFLOWS, ensure_host_extra_nodes

pytestmark = pytest.mark.browser

FRONTEND_ONLY = ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")

LOAD_AND_CONVERT = """async ([workflow, widgets]) => {
    await app.loadGraphData(workflow);
    const registered = window.LiteGraph?.registered_node_types ?? {};
    const missing = app.graph.nodes.filter(n => !(n.type in registered)).map(n => n.type);
    for (const node of app.graph.nodes) {
        for (const w of node.widgets ?? []) {
            const byType = widgets[node.type + "." + w.name];
            const value = byType !== undefined ? byType : widgets[w.name];
            if (value !== undefined && !(w.name === "height" && w.value === 0)) w.value = value;
        }
    }
    const p = await app.graphToPrompt();
    return {missing, workflow: p.workflow, output: p.output};
}"""


@pytest.fixture(scope="module")
def server_files(host, comfy_server):  # noqa: F811
    """Tiny models in the server's models folders and an example image in its input folder."""
    import tiny_depth

    tiny = tiny_checkpoints.tiny_models()
    models = comfy_server.base_dir / "models"
    for folder, name in (("checkpoints", tiny.sd15), ("checkpoints", tiny.sdxl), ("controlnet", tiny.controlnet),
                         ("diffusion_models", tiny.flux_unet), ("text_encoders", tiny.flux_clip_l),
                         ("text_encoders", tiny.flux_t5), ("vae", tiny.flux_vae)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        link = models / folder / name
        if not link.exists():
            link.symlink_to(tiny.root / folder / name)
    tiny_depth.write_tiny_depth_anything(models / "depthanything" / TINY_DEPTH)
    (comfy_server.base_dir / "input").mkdir(exist_ok=True)
    y, x = np.mgrid[0:96, 0:96]
    photo = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(photo).save(comfy_server.base_dir / "input" / "example.png")
    if "video_to_stereo" in WORKFLOWS:
        from test_video_workflow import _load_host_video_nodes, _write_clip

        _write_clip(comfy_server.base_dir / "input" / "example.mp4")
        _load_host_video_nodes(host)  # the server has them; the converter in this process needs them too
    return tiny


def widget_overrides(tiny, sdxl: bool) -> dict:
    return {
        "ckpt_name": tiny.sdxl if sdxl else tiny.sd15,
        "control_net_name": tiny.controlnet,
        "unet_name": tiny.flux_unet,
        "clip_name1": tiny.flux_clip_l,
        "clip_name2": tiny.flux_t5,
        "vae_name": tiny.flux_vae,
        "StereoDisparityModelLoader.model_name": f"depthanything/{TINY_DEPTH}",
        "download_if_missing": False,
        "steps": 3,
        "inner_steps": 1,
        "width": 64,
        "height": 64,
        "resolution": 56,
    }


def _inputs(prompt: dict) -> dict:
    return {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_loads_converts_and_runs_in_the_real_frontend(name, server_files, comfy_page, pack):  # noqa: F811
    import nodes

    ensure_host_extra_nodes(pack)
    converter = host_harness.pack_submodule(pack, "headless.workflow_to_api")
    workflow = json.loads((SHIPPED / f"{name}.json").read_text())
    errors_before = len(comfy_page.page_errors)  # some frontend versions raise one while starting up
    result = comfy_page.page.evaluate(LOAD_AND_CONVERT, [workflow, widget_overrides(server_files, "sdxl" in name)])

    assert result["missing"] == [], f"{name}: the frontend is missing node types {result['missing']}"
    assert not comfy_page.page_errors[errors_before:], comfy_page.page_errors[errors_before:]
    ours = converter.workflow_to_api(result["workflow"], nodes.NODE_CLASS_MAPPINGS)
    assert _inputs(ours) == _inputs(result["output"])
    assert len(ours) == len([n for n in workflow["nodes"] if n["type"] not in FRONTEND_ONLY])

    prompt_id = comfy_page.queue(result["output"])  # raises on validation errors (node_errors)
    if "sdxl" in name or "flux" in name:
        # The tiny SDXL and Flux families are registered in the test process only (see
        # tiny_checkpoints), so the server validates this prompt but cannot load the files; they run
        # in test_example_workflows.
        return
    entry = comfy_page.wait_done(prompt_id, timeout=240)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert any(out.get("images") for out in entry["outputs"].values()), entry["outputs"]
