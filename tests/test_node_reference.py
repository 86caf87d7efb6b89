"""docs/nodes.md is the node reference written from the node definitions: it must match them."""

from tools import write_node_reference


def test_node_reference_matches_the_node_definitions(pack):
    import nodes

    expected = write_node_reference.render(nodes.NODE_CLASS_MAPPINGS)
    current = write_node_reference.OUT.read_text(encoding="utf-8")
    assert current == expected, "docs/nodes.md is out of date: run python -m tools.write_node_reference"
    for node_id in ("StereoKSampler", "StereoCheck", "StereoDisplayTarget", "StereoSaveVideo", "StereoVideoFill"):
        assert f"(`{node_id}`)" in current
