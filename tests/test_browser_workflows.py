"""Every shipped workflow as a user meets it in the real frontend (headless Chromium on a real
ComfyUI server, workflow validation at its default): opened from its file and from the template
browser, it loads without any alert, toast or link repair, keeps every link, shows every node
without overlaps at the saved view, converts like the pack's own converter, and runs when Run is
pressed, with tiny model files chosen in its loaders."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headless import comfy_host, workflow_to_api
from testkit import tiny_checkpoints
from browser_harness import (  # noqa: F401  (comfy_page is a fixture)
    ServerEnvironmentError, browser_unavailable_reason, comfy_page, http_json, start_server, stop_server,
)
from test_example_workflows import SHIPPED, WORKFLOWS, ensure_host_extra_nodes

pytestmark = pytest.mark.browser

FRONTEND_ONLY = ("Note", "MarkdownNote", "PrimitiveNode", "Reroute")
WINDOW = {"width": 1600, "height": 1000}
RUN_TIMEOUT_S = 300

# A test-only custom node: the server process gets the tiny SDXL and Flux families that the test
# process registers for itself (see tiny_checkpoints), so those workflows run there too.
TINY_SDXL_NODE = f"""import sys
sys.path.append({str(comfy_host.PACK_DIR)!r})  # after ComfyUI: the pack root has a `nodes` package
from testkit import tiny_checkpoints
tiny_checkpoints.register_tiny_sdxl()
tiny_checkpoints.register_tiny_flux()
NODE_CLASS_MAPPINGS = {{}}
"""

# Toasts, dialogs and alerts as they appear, recorded in the page (they may vanish before a check).
WATCH_UI = """() => {
    if (window.__stereoUi) return;
    window.__stereoUi = [];
    const seen = new WeakSet();
    const record = (kind, el) => {
        if (seen.has(el)) return;
        seen.add(el);
        setTimeout(() => window.__stereoUi.push({kind, text: (el.innerText || '').trim().slice(0, 600)}), 50);
    };
    const scan = () => {
        document.querySelectorAll('.p-toast-message').forEach(el => record('toast', el));
        document.querySelectorAll('.p-dialog, .comfy-modal').forEach(el => {
            if (el.offsetParent !== null || getComputedStyle(el).display !== 'none') record('dialog', el);
        });
    };
    new MutationObserver(scan).observe(document.body, {childList: true, subtree: true, attributes: true});
    const alert = window.alert;
    window.alert = (m) => { window.__stereoUi.push({kind: 'alert', text: String(m)}); };
}"""

GRAPH_STATE = """() => {
    const nodes = app.graph.nodes;
    const links = [];
    for (const node of nodes) {
        for (const input of node.inputs ?? []) {
            if (input.link == null) continue;
            const link = app.graph.links instanceof Map ? app.graph.links.get(input.link) : app.graph.links[input.link];
            links.push(link ? [link.origin_id, link.origin_slot, node.id, input.name] : ['missing', input.link, node.id, input.name]);
        }
    }
    const canvas = app.canvas.canvas.getBoundingClientRect();
    const ds = app.canvas.ds;
    const boxes = nodes.map(n => {
        const b = n.getBounding ? Array.from(n.getBounding()) : [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30];
        return {id: n.id, title: n.title, mode: n.mode, graph: b,
                screen: [canvas.left + (b[0] + ds.offset[0]) * ds.scale, canvas.top + (b[1] + ds.offset[1]) * ds.scale,
                         b[2] * ds.scale, b[3] * ds.scale]};
    });
    return {ids: nodes.map(n => n.id).sort((a, b) => a - b), links, boxes, scale: ds.scale,
            offset: Array.from(ds.offset)};
}"""

# What covers each node at a grid of points: the canvas, a DOM widget of a node (prompt text,
# image, viewer), or something else (a bar, a panel, the minimap, a dialog).
COVERED_POINTS = """(boxes) => {
    const canvas = app.canvas.canvas;
    const covered = [];
    for (const box of boxes) {
        const [x, y, w, h] = box.screen;
        for (const fx of [0.02, 0.25, 0.5, 0.75, 0.98]) {
            for (const fy of [0.02, 0.25, 0.5, 0.75, 0.98]) {
                const px = x + fx * w, py = y + fy * h;
                const el = document.elementFromPoint(px, py);
                if (el === canvas) continue;
                if (el && (el.closest('.dom-widget') || el.closest('.comfy-img-preview') || ['TEXTAREA', 'IMG', 'CANVAS', 'SELECT', 'INPUT', 'LABEL', 'BUTTON'].includes(el.tagName) && el.closest('[class*=widget], [class*=viewer], .comfy-multiline-input'))) continue;
                covered.push([box.title, Math.round(px), Math.round(py), el ? el.tagName + '.' + el.className : 'outside the window']);
            }
        }
    }
    return covered;
}"""

SET_WIDGETS = """(widgets) => {
    for (const node of app.graph.nodes) {
        for (const w of node.widgets ?? []) {
            const byType = widgets[node.type + "." + w.name];
            const value = byType !== undefined ? byType : widgets[w.name];
            if (value !== undefined && !(w.name === "height" && w.value === 0)) w.value = value;
        }
    }
    app.graph.setDirtyCanvas(true, true);
}"""


@pytest.fixture(scope="module")
def comfy_server(host, tmp_path_factory):
    """The harness' server, with tiny models in its models folders, an example image in its input
    folder and the tiny SDXL family registered, all in place before the frontend loads."""
    reason = browser_unavailable_reason()
    if reason:
        pytest.skip(f"!!! browser tests SKIPPED: {reason} !!!")
    base = tmp_path_factory.mktemp("comfy-base")
    tiny = tiny_checkpoints.tiny_models()
    models = base / "models"
    for folder, name in (("checkpoints", tiny.sd15), ("checkpoints", tiny.sdxl), ("controlnet", tiny.controlnet),
                         ("diffusion_models", tiny.flux_unet), ("text_encoders", tiny.flux_clip_l),
                         ("text_encoders", tiny.flux_t5), ("vae", tiny.flux_vae), ("depthanything", tiny.depth)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        (models / folder / name).symlink_to(tiny.root / folder / name)
    (base / "input").mkdir()
    y, x = np.mgrid[0:96, 0:96]
    photo = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(photo).save(base / "input" / "example.png")
    from test_video_workflow import _write_clip
    from testkit.host_folders import load_host_video_nodes

    _write_clip(base / "input" / "example.mp4")
    load_host_video_nodes(host)  # the server has them; the converter in this process needs them too
    (base / "custom_nodes" / "stereo_test_tiny_sdxl").mkdir(parents=True)
    (base / "custom_nodes" / "stereo_test_tiny_sdxl" / "__init__.py").write_text(TINY_SDXL_NODE)
    try:
        server = start_server(host, base, extra_args=("--fp32-text-enc",))
    except ServerEnvironmentError as exc:
        pytest.skip(f"!!! browser tests SKIPPED: {exc} !!!")
    server.tiny = tiny
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def page(comfy_page):  # noqa: F811
    comfy_page.page.set_viewport_size(WINDOW)
    comfy_page.page.evaluate(WATCH_UI)
    comfy_page.page.on("dialog", lambda d: (comfy_page.console.append(("alert", d.message)), d.dismiss()))
    return comfy_page


def widget_overrides(tiny, sdxl: bool) -> dict:
    return {
        "ckpt_name": tiny.sdxl if sdxl else tiny.sd15,
        "control_net_name": tiny.controlnet,
        "unet_name": tiny.flux_unet,
        "clip_name1": tiny.flux_clip_l,
        "clip_name2": tiny.flux_t5,
        "vae_name": tiny.flux_vae,
        "StereoDisparityModelLoader.model_name": tiny.depth_model_name,
        "download_if_missing": False,
        "steps": 3,
        "inner_steps": 1,
        "width": 64,
        "height": 64,
        "resolution": 56,
    }


def ui_problems(comfy) -> list[str]:
    """Everything a user would be told or that the frontend complained about."""
    shown = comfy.page.evaluate("() => window.__stereoUi.splice(0)")
    problems = [f"{m['kind']}: {m['text']}" for m in shown]
    problems += [f"{kind}: {text}" for kind, text in comfy.console
                 if kind == "alert" or kind in ("error", "warning") and "link" in text.lower()]
    problems += [f"page error: {e}" for e in comfy.page_errors]
    comfy.console.clear()
    comfy.page_errors.clear()
    return problems


def open_from_file(comfy, path: Path) -> None:
    """Workflow > Open: the frontend's file input, as the menu and drag and drop use it."""
    comfy.page.set_input_files("#comfy-file-input", str(path))


def open_from_template_browser(comfy, title: str) -> None:
    page = comfy.page
    page.get_by_role("button", name="Templates").first.click()
    dialog = page.locator(".p-dialog").last
    dialog.get_by_text(comfy_host.PACK_DIR.name, exact=True).first.click()
    time.sleep(0.3)
    opened = page.evaluate("() => window.__stereoUi.splice(0)")  # the template browser itself
    assert [m["kind"] for m in opened] == ["dialog"], opened
    dialog.get_by_text(title, exact=True).first.click()
    page.wait_for_function("() => !document.querySelector('.p-dialog')", timeout=30_000)


def wait_loaded(comfy, ids: list[int]) -> dict:
    comfy.page.wait_for_function(
        "(ids) => JSON.stringify(app.graph.nodes.map(n => n.id).sort((a, b) => a - b)) === JSON.stringify(ids)",
        arg=ids, timeout=30_000,
    )
    time.sleep(1.0)  # let the frontend finish sizing nodes and settle its toasts
    return comfy.page.evaluate(GRAPH_STATE)


def saved_links(workflow: dict) -> list:
    nodes = {n["id"]: n for n in workflow["nodes"]}
    return sorted([origin, origin_slot, target, nodes[target]["inputs"][target_slot]["name"]]
                  for _, origin, origin_slot, target, target_slot, _ in workflow["links"])


def overlaps(boxes: list[dict]) -> list:
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["graph"], b["graph"]
            if min(ax + aw, bx + bw) > max(ax, bx) and min(ay + ah, by + bh) > max(ay, by):
                found.append((a["title"], b["title"]))
    return found


def press_run_and_wait(comfy, timeout: float) -> dict:
    before = set(http_json(f"{comfy.base_url}/history"))
    comfy.page.get_by_role("button", name="Run", exact=True).first.click()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        problems = ui_problems(comfy)
        assert not problems, problems
        new = {k: v for k, v in http_json(f"{comfy.base_url}/history").items() if k not in before}
        if new:
            (entry,) = new.values()
            return entry
        time.sleep(0.5)
    raise AssertionError(f"Run queued nothing that finished in {timeout}s:\n{comfy.server.log()[-3000:]}")


@pytest.mark.parametrize("source", ["file", "template browser"])
@pytest.mark.parametrize("title", WORKFLOWS)
def test_a_user_opens_the_workflow_and_runs_it(title, source, page, comfy_server, pack):
    import nodes

    ensure_host_extra_nodes(pack)
    path = SHIPPED / f"{title}.json"
    workflow = json.loads(path.read_text(encoding="utf-8"))
    ids = sorted(n["id"] for n in workflow["nodes"])
    # start clean: a toast left by an earlier test would hide nodes
    page.page.evaluate("() => document.querySelectorAll('.p-toast-close-button').forEach(b => b.click())")
    ui_problems(page)
    if source == "file":
        open_from_file(page, path)
    else:
        open_from_template_browser(page, title)
    state = wait_loaded(page, ids)

    assert not ui_problems(page), f"{title}: the frontend complained on load"
    assert sorted(state["links"]) == saved_links(workflow), f"{title}: links changed on load"
    assert {b["mode"] for b in state["boxes"]} == {0}
    assert state["scale"] == pytest.approx(workflow["extra"]["ds"]["scale"])
    assert not overlaps(state["boxes"]), overlaps(state["boxes"])
    covered = page.page.evaluate(COVERED_POINTS, state["boxes"])
    assert not covered, f"{title}: parts of nodes are hidden at load in a {WINDOW} window: {covered[:8]}"

    page.page.evaluate(SET_WIDGETS, widget_overrides(comfy_server.tiny, "SDXL" in title))
    prompt = page.page.evaluate("async () => (await app.graphToPrompt()).output")
    ours = workflow_to_api.workflow_to_api(page.page.evaluate("async () => (await app.graphToPrompt()).workflow"),
                                     nodes.NODE_CLASS_MAPPINGS)
    assert {k: (v["class_type"], v["inputs"]) for k, v in ours.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    assert len(ours) == len([n for n in workflow["nodes"] if n["type"] not in FRONTEND_ONLY])

    entry = press_run_and_wait(page, RUN_TIMEOUT_S)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert set(entry["prompt"][2]) == set(prompt), "Run queued another prompt than the loaded workflow"
    assert any(out.get("images") or out.get("stereo_images") for out in entry["outputs"].values()), entry["outputs"]
    assert not ui_problems(page)
