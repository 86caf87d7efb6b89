"""The stereo viewer extension in a real headless Chromium on a real ComfyUI server."""

from __future__ import annotations

import time

import pytest

from browser_harness import comfy_page, comfy_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

W, H = 9, 6
RED, BLUE = 0xFF0000, 0x0000FF
PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": RED}},
    "2": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": BLUE}},
    "3": {"class_type": "StereoJoin", "inputs": {"left": ["1", 0], "right": ["2", 0]}},
    "4": {
        "class_type": "StereoSaveImage",
        "inputs": {
            "stereo": ["3", 0], "filename_prefix": "browser", "layout": "parallel-half",
            "anaglyph_method": "dubois", "save_mpo": False,
        },
    },
}

VIEWER = "app.graph.getNodeById(4)?.stereoViewer"
READ_PIXEL = f"""([x, y]) => {{
    const c = {VIEWER}.canvas;
    return [c.width, c.height, ...c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)];
}}"""


def pixel(page, x, y):
    w, h, *rgb = page.evaluate(READ_PIXEL, [x, y])
    return (w, h), tuple(rgb)


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


def srgb8(linear):
    return round((1.055 * linear ** (1 / 2.4) - 0.055) * 255)


@pytest.fixture(scope="module")
def executed_viewer(comfy_page):  # noqa: F811
    page = comfy_page.page
    page.evaluate("(p) => app.loadApiJson(p, 'stereo_viewer_test.json')", PROMPT)
    page.wait_for_function(f"() => !!{VIEWER}", timeout=10_000)
    prompt_id = comfy_page.queue(PROMPT)
    comfy_page.wait_done(prompt_id)
    page.wait_for_function(f"() => {VIEWER}.draws > 0", timeout=20_000)
    return comfy_page


def test_extension_loads_without_console_errors(comfy_page):  # noqa: F811
    names = comfy_page.page.evaluate("() => app.extensions.map(e => e.name)")
    assert names.count("StereoDiffusion.StereoViewer") == 1
    assert comfy_page.errors_mentioning("stereo") == []


def test_viewer_adds_nothing_to_the_saved_workflow(executed_viewer):
    values = executed_viewer.page.evaluate(
        "() => app.graph.serialize().nodes.filter(n => n.type === 'StereoSaveImage').map(n => n.widgets_values)"
    )
    assert values and all("" not in v and len(v) == 4 for v in values), values


def test_viewer_shows_the_executed_pair_as_a_dubois_anaglyph(executed_viewer):
    page = executed_viewer.page
    size, rgb = pixel(page, 4, 3)
    assert size == (W, H)
    # Red left, blue right, in linear light: R = 0.456 - 0.002, G < 0 -> 0, B = -0.015 + 1.226 -> 1.
    assert rgb == (srgb8(0.454), 0, 255)
    assert executed_viewer.errors_mentioning("stereo") == []


def test_switching_modes_changes_what_is_drawn(executed_viewer):
    page = executed_viewer.page
    set_control(page, ".stereo-viewer-mode", "parallel")
    assert pixel(page, 1, 1) == ((2 * W, H), (255, 0, 0))
    assert pixel(page, W + 1, 1) == ((2 * W, H), (0, 0, 255))

    set_control(page, ".stereo-viewer-mode", "cross-eyed")
    assert pixel(page, 1, 1)[1] == (0, 0, 255) and pixel(page, W + 1, 1)[1] == (255, 0, 0)

    set_control(page, ".stereo-viewer-swap", True)
    assert pixel(page, 1, 1)[1] == (255, 0, 0)
    set_control(page, ".stereo-viewer-mode", "parallel")
    assert pixel(page, 1, 1)[1] == (0, 0, 255)
    set_control(page, ".stereo-viewer-swap", False)

    set_control(page, ".stereo-viewer-mode", "wiggle")
    seen = set()
    deadline = time.monotonic() + 3
    while len(seen) < 2 and time.monotonic() < deadline:
        size, rgb = pixel(page, 1, 1)
        assert size == (W, H)
        seen.add(rgb)
        time.sleep(0.05)
    assert seen == {(255, 0, 0), (0, 0, 255)}, "wiggle must alternate between the eyes"

    set_control(page, ".stereo-viewer-mode", "anaglyph")
    assert pixel(page, 1, 1)[1] == (srgb8(0.454), 0, 255)
    assert executed_viewer.errors_mentioning("stereo") == []


def test_viewer_leaves_the_saved_file_and_history_as_the_host_expects(executed_viewer):
    import json
    import urllib.request

    history = json.loads(urllib.request.urlopen(f"{executed_viewer.base_url}/history").read())
    outputs = [e["outputs"]["4"] for e in history.values() if "4" in e.get("outputs", {})]
    assert outputs and outputs[-1]["images"][0]["filename"].endswith("_LR.png")
    assert (executed_viewer.server.base_dir / "output" / outputs[-1]["images"][0]["filename"]).is_file()
