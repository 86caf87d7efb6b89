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
