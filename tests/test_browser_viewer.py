"""The stereo viewer extension in a real headless Chromium on a real ComfyUI server: what it shows
(mode from the node's layout, every anaglyph method against stereo_ops), how it sits in the node
(full width, sized to the pair, no second preview) and what it leaves in the workflow and history."""

from __future__ import annotations

import json
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from browser_harness import comfy_page, comfy_server  # noqa: F401  (fixtures)
from stereo_pack.stereo_ops.anaglyph import ANAGLYPH_METHODS, anaglyph

pytestmark = pytest.mark.browser

W, H = 12, 8
NODE = 4
PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "viewer_left.png"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "viewer_right.png"}},
    "3": {"class_type": "StereoJoin", "inputs": {"left": ["1", 0], "right": ["2", 0]}},
    "4": {
        "class_type": "StereoSaveImage",
        "inputs": {
            "stereo": ["3", 0], "filename_prefix": "browser", "layout": "parallel-half",
            "anaglyph_method": "dubois", "save_mpo": False,
        },
    },
}

VIEWER = f"app.graph.getNodeById({NODE})?.stereoViewer"
READ_CANVAS = f"""() => {{
    const c = {VIEWER}.canvas;
    return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];
}}"""


def eye_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two views with every kind of colour: saturated, dark, light, gray, random."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    fixed = np.array([[255, 0, 0], [0, 255, 255], [0, 0, 0], [255, 255, 255], [128, 128, 128], [10, 200, 30]], np.uint8)
    left[0, : len(fixed)] = fixed
    right[0, : len(fixed)] = fixed[::-1]
    return left, right


LEFT, RIGHT = eye_images()


def canvas(page) -> np.ndarray:
    w, h, data = page.evaluate(READ_CANVAS)
    return np.asarray(data, dtype=np.float64).reshape(h, w, 4)[..., :3]


def set_control(page, selector, value):
    """Operate a viewer control the way a click does: change its value and fire `change`."""
    page.evaluate(
        """([sel, value]) => {
            const el = document.querySelector(sel);
            if (el.type === 'checkbox') el.checked = value; else el.value = value;
            el.dispatchEvent(new Event('change', {bubbles: true}));
        }""",
        [selector, value],
    )


def set_widget(page, name, value):
    """Change one of the node's own widgets as the frontend does when the user picks a value."""
    page.evaluate(
        f"""([name, value]) => {{
            const node = app.graph.getNodeById({NODE});
            const w = node.widgets.find(w => w.name === name);
            w.value = value;
            w.callback?.(value, app.canvas, node);
        }}""",
        [name, value],
    )


def viewer_mode(page) -> str:
    return page.evaluate(f"() => [{VIEWER}.element.dataset.mode, document.querySelector('.stereo-viewer-mode').value]")


@pytest.fixture(scope="module")
def executed_viewer(comfy_page):  # noqa: F811
    page = comfy_page.page
    inputs = comfy_page.server.base_dir / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    Image.fromarray(LEFT).save(inputs / "viewer_left.png")
    Image.fromarray(RIGHT).save(inputs / "viewer_right.png")
    page.evaluate("(p) => app.loadApiJson(p, 'stereo_viewer_test.json')", PROMPT)
    page.wait_for_function(f"() => !!{VIEWER}", timeout=10_000)
    # Bring the node into view (DOM widgets outside the visible canvas are hidden) at zoom 1.
    page.evaluate(
        f"""() => {{
            const node = app.graph.getNodeById({NODE});
            const ds = app.canvas.ds;
            ds.scale = 1;
            ds.offset[0] = 40 - node.pos[0];
            ds.offset[1] = 80 - node.pos[1];
            app.canvas.setDirty(true, true);
        }}"""
    )
    prompt_id = comfy_page.queue(PROMPT)
    comfy_page.wait_done(prompt_id)
    page.wait_for_function(f"() => {VIEWER}.draws > 0", timeout=20_000)
    time.sleep(0.5)  # a few frames: the frontend draws (and would add) its own previews on redraw
    return comfy_page


def test_extension_loads_without_console_errors(comfy_page):  # noqa: F811
    names = comfy_page.page.evaluate("() => app.extensions.map(e => e.name)")
    assert names.count("StereoDiffusion.StereoViewer") == 1
    assert comfy_page.errors_mentioning("stereo") == []


def test_viewer_adds_nothing_to_the_saved_workflow(executed_viewer):
    values = executed_viewer.page.evaluate(
        "() => app.graph.serialize().nodes.filter(n => n.type === 'StereoSaveImage').map(n => n.widgets_values)"
    )
    assert values and all("" not in v and len(v) == 7 for v in values), values


def test_viewer_starts_in_the_mode_of_the_layout_and_follows_it(executed_viewer):
    page = executed_viewer.page
    assert viewer_mode(page) == ["parallel", "parallel"]  # layout parallel-half
    np.testing.assert_array_equal(canvas(page), np.concatenate([LEFT, RIGHT], axis=1))

    set_widget(page, "layout", "top-bottom")
    assert viewer_mode(page) == ["top-bottom", "top-bottom"]
    np.testing.assert_array_equal(canvas(page), np.concatenate([LEFT, RIGHT], axis=0))
    set_widget(page, "layout", "cross-eyed-half")
    np.testing.assert_array_equal(canvas(page), np.concatenate([RIGHT, LEFT], axis=1))
    set_widget(page, "layout", "anaglyph")
    assert viewer_mode(page) == ["anaglyph", "anaglyph"]
    set_widget(page, "layout", "parallel-half")
    assert executed_viewer.errors_mentioning("stereo") == []


@pytest.mark.parametrize("method", ANAGLYPH_METHODS)
def test_anaglyph_follows_anaglyph_method_and_matches_stereo_ops(executed_viewer, method):
    page = executed_viewer.page
    set_control(page, ".stereo-viewer-mode", "anaglyph")
    set_widget(page, "anaglyph_method", method)
    shown = canvas(page)
    left, right = (torch.from_numpy(v.astype(np.float64) / 255.0) for v in (LEFT, RIGHT))
    expected = anaglyph(left, right, method).numpy() * 255.0
    assert shown.shape == expected.shape
    # The viewer shows 8-bit values: at most rounding away from stereo_ops' exact result.
    assert np.abs(shown - expected).max() <= 1.0, (method, np.abs(shown - expected).max())
    set_widget(page, "anaglyph_method", "dubois")
    set_widget(page, "layout", "parallel-half")  # back to following the layout


def test_switching_modes_changes_what_is_drawn(executed_viewer):
    page = executed_viewer.page
    set_control(page, ".stereo-viewer-mode", "cross-eyed")
    np.testing.assert_array_equal(canvas(page), np.concatenate([RIGHT, LEFT], axis=1))
    set_control(page, ".stereo-viewer-swap", True)
    np.testing.assert_array_equal(canvas(page), np.concatenate([LEFT, RIGHT], axis=1))
    set_control(page, ".stereo-viewer-mode", "parallel")
    np.testing.assert_array_equal(canvas(page), np.concatenate([RIGHT, LEFT], axis=1))
    set_control(page, ".stereo-viewer-swap", False)

    set_control(page, ".stereo-viewer-mode", "wiggle")
    seen = set()
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        shown = canvas(page)
        assert shown.shape == (H, W, 3)
        seen.add(shown.tobytes())
        time.sleep(0.05)
    assert seen == {LEFT.astype(np.float64).tobytes(), RIGHT.astype(np.float64).tobytes()}, \
        "wiggle must alternate between the eyes"
    set_widget(page, "layout", "parallel-half")  # a layout change ends the mode picked by hand
    assert viewer_mode(page) == ["parallel", "parallel"]
    assert executed_viewer.errors_mentioning("stereo") == []


LAYOUT = f"""() => {{
    const node = app.graph.getNodeById({NODE});
    const v = node.stereoViewer;
    const box = (el) => {{ const r = el.getBoundingClientRect(); return [r.width, r.height]; }};
    return {{
        scale: app.canvas.ds.scale, node: [node.size[0], node.size[1]],
        element: box(v.element), canvas: box(v.canvas), bar: box(v.bar), status: box(v.status),
        pixels: [v.canvas.width, v.canvas.height],
        imgs: node.imgs?.length ?? 0, fit: getComputedStyle(v.canvas).objectFit,
        controls: [v.modeSelect, v.pairSelect].map(el => getComputedStyle(el).backgroundColor),
        widgets: (node.widgets ?? []).map(w => w.name),
    }};
}}"""


def test_viewer_fills_the_node_width_and_the_node_fits_the_pair(executed_viewer):
    page = executed_viewer.page
    heights = []
    for mode in ("parallel", "anaglyph", "top-bottom", "wiggle"):
        set_control(page, ".stereo-viewer-mode", mode)
        page.wait_for_timeout(300)
        box = page.evaluate(LAYOUT)
        (cw, ch), (ew, eh), scale = box["canvas"], box["element"], box["scale"]
        pw, ph = box["pixels"]
        assert ew >= (box["node"][0] - 30) * scale, box  # the widget spans the node
        assert cw >= 0.98 * ew, box  # the picture fills the widget's width
        # A side-by-side pair's box in every mode; taller pictures are fitted into it at their own aspect.
        assert ch / cw == pytest.approx(H / (2 * W), rel=0.02), box
        assert box["fit"] == "contain" and pw * ph > 0, box
        heights.append(box["node"][1])
        # The widget holds the controls, the picture and the status line: nothing cut off, no empty band.
        assert 0 <= eh - (box["bar"][1] + ch + box["status"][1]) <= 16 * scale, box
        # The node is as tall as its widgets and the viewer need, not more: the title, three input
        # sockets and seven widgets take under 280 px.
        assert box["node"][1] * scale <= eh + 280 * scale, box
        # The controls take the theme's input colours (the default theme is dark), not the browser's white.
        assert all(c not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)") for c in box["controls"]), box
    assert max(heights) - min(heights) < 1, heights  # switching modes never makes the node grow
    set_widget(page, "layout", "parallel-half")


def test_the_viewer_is_the_only_preview_of_the_saved_pair(executed_viewer):
    page = executed_viewer.page
    page.evaluate("() => app.canvas.setDirty(true, true)")
    page.wait_for_timeout(500)
    box = page.evaluate(LAYOUT)
    assert box["imgs"] == 0, box
    assert not [w for w in box["widgets"] if "preview" in w.lower()], box["widgets"]


def test_the_saved_file_is_in_the_history_under_stereo_images(executed_viewer):
    history = json.loads(urllib.request.urlopen(f"{executed_viewer.base_url}/history").read())
    outputs = [e["outputs"][str(NODE)] for e in history.values() if str(NODE) in e.get("outputs", {})]
    assert outputs and "images" not in outputs[-1]
    saved = outputs[-1]["stereo_images"][0]
    assert saved["filename"].endswith("_LR.png") and saved["type"] == "output"
    assert (executed_viewer.server.base_dir / "output" / saved["filename"]).is_file()


def test_a_loaded_workflow_opens_its_viewer_in_the_saved_layout(executed_viewer):
    """Runs last: it replaces the graph. Loading sets the widget values after the node exists."""
    page = executed_viewer.page
    modes = page.evaluate(
        f"""async () => {{
            const workflow = app.graph.serialize();
            const node = workflow.nodes.find(n => n.id === {NODE});
            const seen = [];
            for (const layout of ['top-bottom-half', 'anaglyph']) {{
                node.widgets_values[1] = layout;
                await app.loadGraphData(structuredClone(workflow));
                seen.push({VIEWER}.element.dataset.mode);
            }}
            return seen;
        }}"""
    )
    assert modes == ["top-bottom", "anaglyph"]


def _scene_pngs(inputs) -> None:
    """An exact synthetic pair large enough for Stereo Check, as the two input files."""
    from dataclasses import replace

    from stereo_pack.stereo_ops.synthetic_scenes import default_planes, layered_scene

    planes = tuple(replace(p, detail=1.0) for p in default_planes(96, 128))
    scene = layered_scene(96, 128, 3.0, 0.5, planes=planes, dtype=torch.float32)
    for name, view in (("check_left.png", scene.left), ("check_right.png", scene.right)):
        array = (view.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(inputs / name)


def test_the_viewer_shows_the_check_verdict_and_parallax_range(executed_viewer):
    page, server = executed_viewer.page, executed_viewer.server
    _scene_pngs(server.base_dir / "input")
    status = f"() => {VIEWER}.status.textContent"
    try:
        for left, right, verdict in (("check_left.png", "check_right.png", "check: "),
                                     ("check_right.png", "check_left.png", "check: WARN (eyes swapped")):
            prompt = json.loads(json.dumps(PROMPT))
            prompt["1"]["inputs"]["image"], prompt["2"]["inputs"]["image"] = left, right
            executed_viewer.wait_done(executed_viewer.queue(prompt))
            page.wait_for_function(f"() => {VIEWER}.status.textContent.includes('128x96')", timeout=20_000)
            text = page.evaluate(status)
            assert verdict in text and "parallax " in text and " %" in text, text
        # The 12x8 pair is too small to check: no verdict, just its size.
        executed_viewer.wait_done(executed_viewer.queue(PROMPT))
        page.wait_for_function(f"() => {VIEWER}.status.textContent.startsWith('{W}x{H}')", timeout=20_000)
        assert "check" not in page.evaluate(status)
    finally:
        executed_viewer.wait_done(executed_viewer.queue(PROMPT))
