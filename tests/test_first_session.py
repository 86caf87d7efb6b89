"""What a new user meets first: node search finds the pack by the words people type, the save
node says which control writes the file, and the runner still names nodes by their short names."""

from __future__ import annotations

import pytest

# The frontend's node search is a fuzzy match over the node id and the displayed name, scored by
# where in the text the word sits: a word in the first ~30 characters is found.
SEARCH_REACH = 30
FOUND_BY = {
    "depth": {"StereoDisparityModelLoader", "StereoEstimateDisparity", "StereoDepthToDisparity"},
    "SBS": {"StereoSideBySide", "StereoSaveImage"},
    "VR": {"StereoSideBySide", "StereoSaveImage"},
    "3D": {"StereoAnaglyph", "StereoSaveImage"},
}


def _pack_display_names() -> dict[str, str]:
    import nodes

    return {
        node_id: nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id)
        for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items()
        if hasattr(cls, "GET_SCHEMA") and cls.GET_SCHEMA().category.startswith("stereo/")
    }


def _found(word: str, node_id: str, display: str) -> bool:
    word = word.casefold()
    return word in node_id.casefold() or word in display.casefold()[:SEARCH_REACH]


@pytest.mark.parametrize("word", sorted(FOUND_BY))
def test_search_words_find_the_pack_nodes(pack, word):
    names = _pack_display_names()
    found = {node_id for node_id, display in names.items() if _found(word, node_id, display)}
    assert FOUND_BY[word] <= found, f"'{word}' finds {sorted(found)}"


def test_save_image_says_which_layout_control_writes_the_file(pack):
    import nodes

    schema = nodes.NODE_CLASS_MAPPINGS["StereoSaveImage"].GET_SCHEMA()
    layout = next(i for i in schema.inputs if i.id == "layout")
    assert "decides the file" in layout.tooltip and "viewer" in layout.tooltip


def test_the_runner_names_nodes_without_their_search_words():
    from headless.run_workflow import short_name

    assert short_name("Estimate Disparity (Depth)") == "Estimate Disparity"
    assert short_name("Stereo Save Image (SBS, VR, 3D)") == "Stereo Save Image"
    assert short_name("KSampler") == "KSampler"


def test_each_template_thumbnail_shows_its_own_picture():
    """Not one scene recoloured: the thumbnails differ in their grey levels, above the caption band."""
    import itertools
    from pathlib import Path

    import numpy as np
    from PIL import Image

    folder = Path(__file__).resolve().parents[1] / "example_workflows"
    grey = {p.stem: np.asarray(Image.open(p).convert("L").resize((48, 36)), np.float32)[:30] / 255
            for p in folder.glob("*.jpg")}
    assert len(grey) >= 2
    for a, b in itertools.combinations(sorted(grey), 2):
        assert np.abs(grey[a] - grey[b]).mean() > 0.03, (a, b)


def _template(title_start: str) -> dict:
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "example_workflows"
    (path,) = [p for p in folder.glob("*.json") if p.name.startswith(title_start)]
    return json.loads(path.read_text(encoding="utf-8"))


def _primitive_targets(workflow: dict) -> dict[str, set[tuple[str, str]]]:
    """title of each primitive -> the (node type, input) pairs it feeds."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    out = {}
    for node in workflow["nodes"]:
        if node["type"] != "PrimitiveNode":
            continue
        targets = set()
        for link_id in node["outputs"][0]["links"]:
            dst = nodes[links[link_id][3]]
            slot = links[link_id][4]
            targets.add((dst["type"], dst["inputs"][slot].get("widget", {}).get("name") or dst["inputs"][slot]["name"]))
        out[node["title"]] = targets
    return out


@pytest.mark.parametrize("title", ["Photo to stereo", "Flux photo to stereo"])
def test_photo_workflows_hold_steps_and_cfg_once_for_the_inversion_and_the_sampler(title):
    targets = _primitive_targets(_template(title))
    for name in ("steps", "cfg"):
        assert {("StereoNullTextInversion", name), ("StereoKSampler", name)} in targets.values(), targets


def test_depth_to_stereo_sets_the_size_once():
    targets = _primitive_targets(_template("Depth to stereo"))
    for name in ("width", "height"):
        assert {("ImageScale", name), ("EmptyLatentImage", name)} in targets.values(), targets
