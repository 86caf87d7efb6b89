"""The shipped workflow files as the frontend reads them, without a host: both folders hold the same
files and are real folders, every link record agrees with the nodes it joins, nodes run, nothing
overlaps, and the saved view shows the whole graph readably."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess

import pytest

from headless import comfy_host

ROOT = comfy_host.PACK_DIR
SHIPPED = ROOT / "examples_workflows"  # the pack's folder
TEMPLATES = ROOT / "example_workflows"  # the folder ComfyUI's template browser lists
TITLES = sorted(p.stem for p in SHIPPED.glob("*.json"))

# LiteGraph: a node's pos is its body's top-left corner; the 30 px title bar sits above it and the
# frontend draws the node's source badge (about 20 px) above the title bar.
TITLE_HEIGHT = 30
BADGE_HEIGHT = 20
EXECUTION_MODES = {0, 2, 4}  # always, never (muted), bypass
WINDOW = (1600, 1000)
READABLE_SCALE = 0.6  # below it LiteGraph draws nodes without text


def load(title: str) -> dict:
    return json.loads((SHIPPED / f"{title}.json").read_text(encoding="utf-8"))


def test_there_are_workflows_to_check():
    assert len(TITLES) >= 4, TITLES


def test_the_template_folder_is_a_real_folder_with_the_same_files():
    assert TEMPLATES.is_dir() and not TEMPLATES.is_symlink()
    assert SHIPPED.is_dir() and not SHIPPED.is_symlink()
    names = sorted(p.name for p in SHIPPED.iterdir())
    assert names == sorted(p.name for p in TEMPLATES.iterdir()), "run tools/build_example_workflows.py and tools/make_thumbnails.py"
    for name in names:
        assert (SHIPPED / name).read_bytes() == (TEMPLATES / name).read_bytes(), name


def test_nothing_in_the_repository_is_a_symlink():
    """A symlink is checked out as a small text file on Windows and by zip installs, and ComfyUI
    then fails at start-up serving it as a folder."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000 ")]
    assert links == []


def check_links(workflow: dict) -> None:
    """The frontend finds a link's input by the record's target slot and repairs (deletes) links
    whose slots disagree with the nodes; the records must be exact."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    records = {}
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        assert link_id not in records, f"link {link_id} recorded twice"
        records[link_id] = (origin, origin_slot, target, target_slot)
        inputs, outputs = nodes[target].get("inputs", []), nodes[origin].get("outputs", [])
        assert 0 <= target_slot < len(inputs) and inputs[target_slot]["link"] == link_id, \
            f"link {link_id}: slot {target_slot} of node {target} ({nodes[target]['type']}) does not hold it"
        assert 0 <= origin_slot < len(outputs) and link_id in outputs[origin_slot]["links"], \
            f"link {link_id}: output {origin_slot} of node {origin} ({nodes[origin]['type']}) does not list it"
        assert kind == outputs[origin_slot]["type"], f"link {link_id} has type {kind}"
    # and the other way round: every link a node lists has its record, at that slot
    for node in nodes.values():
        for slot, entry in enumerate(node.get("inputs", [])):
            if entry.get("link") is not None:
                assert records[entry["link"]][2:] == (node["id"], slot), (node["type"], entry)
        for slot, entry in enumerate(node.get("outputs", [])):
            for link_id in entry.get("links") or []:
                assert records[link_id][:2] == (node["id"], slot), (node["type"], entry)
    assert workflow["last_link_id"] >= max(records) and workflow["last_node_id"] >= max(nodes)


@pytest.mark.parametrize("title", TITLES)
def test_every_link_record_matches_the_inputs_and_outputs_it_joins(title):
    check_links(load(title))


def test_the_builder_takes_slots_from_the_node_inputs_and_keeps_widgets_out_of_the_execution_mode():
    """Nodes with a widget called `mode`, a new optional input before the linked ones, and links
    made in another order than the inputs: what a node that gains inputs looks like to the builder."""
    from tools import build_example_workflows as builder

    class Source:
        RETURN_TYPES = ("MODEL", "INT", "IMAGE")

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

    class Patch:
        RETURN_TYPES = ("MODEL",)

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"model": ("MODEL",), "mode": (["unidirectional", "bidirectional"],),
                                 "seed": ("INT", {"default": 0, "control_after_generate": True})},
                    "optional": {"new_input": ("MASK",), "image": ("IMAGE",)}}

    graph = builder.Graph({"Source": Source, "Patch": Patch})
    source, patch = graph.node("Source"), graph.node("Patch", mode="bidirectional")
    graph.link(source, "IMAGE", patch, "image")
    graph.link(source, "INT", patch, "seed")
    graph.link(source, "MODEL", patch, "model")
    graph.columns([source], [patch])
    workflow = graph.to_json("test")
    check_links(workflow)
    node = next(n for n in workflow["nodes"] if n["type"] == "Patch")
    assert node["mode"] == 0 and node["widgets_values"] == ["bidirectional", 0, "fixed"]
    assert [i["name"] for i in node["inputs"]] == ["model", "seed", "new_input", "image"]


@pytest.mark.parametrize("title", TITLES)
def test_every_node_has_an_execution_mode(title):
    for node in load(title)["nodes"]:
        assert isinstance(node["mode"], int) and node["mode"] in EXECUTION_MODES, (node["type"], node["mode"])


def bounds(node: dict) -> tuple[float, float, float, float]:
    x, y = node["pos"]
    w, h = node["size"]
    return x, y - TITLE_HEIGHT - BADGE_HEIGHT, x + w, y + h


@pytest.mark.parametrize("title", TITLES)
def test_no_two_nodes_overlap_title_bars_included(title):
    nodes = load(title)["nodes"]
    for a, b in itertools.combinations(nodes, 2):
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = bounds(a), bounds(b)
        overlap = min(ax1, bx1) > max(ax0, bx0) and min(ay1, by1) > max(ay0, by0)
        assert not overlap, f"{a.get('title', a['type'])} and {b.get('title', b['type'])} overlap"


@pytest.mark.parametrize("title", TITLES)
def test_the_saved_view_shows_every_node_readably(title):
    """extra.ds is the zoom and offset the frontend restores at load; screen = (pos + offset) * scale
    from the canvas' corner. The browser test checks the same on the real frontends' layouts."""
    workflow = load(title)
    ds = workflow["extra"]["ds"]
    scale, (dx, dy) = ds["scale"], ds["offset"]
    assert READABLE_SCALE <= scale <= 1.5
    for node in workflow["nodes"]:
        x0, y0, x1, y1 = bounds(node)
        assert 0 <= (x0 + dx) * scale and (x1 + dx) * scale <= WINDOW[0], node.get("title", node["type"])
        assert 0 <= (y0 + dy) * scale and (y1 + dy) * scale <= WINDOW[1], node.get("title", node["type"])


@pytest.mark.parametrize("title", TITLES)
def test_each_workflow_has_a_note_and_a_thumbnail(title):
    assert any(n["type"] in ("Note", "MarkdownNote") for n in load(title)["nodes"])
    assert (SHIPPED / f"{title}.jpg").is_file()
