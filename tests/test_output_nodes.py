"""The output nodes in the real host: composing, saving (names, PNG metadata, MPO), UI previews."""

from __future__ import annotations

import asyncio
import inspect
import io
import json

import pytest
import torch
from PIL import Image

RED, BLUE = 0xFF0000, 0x0000FF


class _QuietServer:
    """What PromptExecutor needs of the server, recording the messages it sends."""

    client_id = None
    last_node_id = None

    def __init__(self):
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


def run_prompt(prompt: dict, extra_data: dict | None = None) -> dict:
    """Validate and execute an API-format prompt in-process; return the UI outputs by node id."""
    import execution

    valid = asyncio.run(execution.validate_prompt("test", prompt, None))
    assert valid[0], f"prompt did not validate: {valid[1]} {valid[3]}"
    # Newer hosts need cache_args (and read its "ram" entry); older ones take cache_size.
    params = inspect.signature(execution.PromptExecutor).parameters
    kwargs = {"cache_args": {"lru": 0, "ram": 0.0}} if "cache_args" in params else {}
    executor = execution.PromptExecutor(_QuietServer(), **kwargs)
    executor.execute(prompt, "test", extra_data or {}, valid[2])
    assert executor.success, executor.status_messages
    return executor.history_result["outputs"]


def stereo_prompt(save_inputs: dict, width=5, height=3, batch=1) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch, "color": RED}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch, "color": BLUE}},
        "3": {"class_type": "StereoJoin", "inputs": {"left": ["1", 0], "right": ["2", 0]}},
        "4": {
            "class_type": "StereoSaveImage",
            "inputs": {
                "stereo": ["3", 0], "filename_prefix": "pair", "layout": "parallel",
                "anaglyph_method": "dubois", "save_mpo": False, **save_inputs,
            },
        },
    }


@pytest.fixture
def output_dirs(pack, tmp_path):
    import folder_paths

    old_out, old_temp = folder_paths.get_output_directory(), folder_paths.get_temp_directory()
    out, temp = tmp_path / "output", tmp_path / "temp"
    out.mkdir()
    temp.mkdir()
    folder_paths.set_output_directory(str(out))
    folder_paths.set_temp_directory(str(temp))
    yield out, temp
    folder_paths.set_output_directory(old_out)
    folder_paths.set_temp_directory(old_temp)


def node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def test_side_by_side_node_composes_each_pair(pack):
    stereo = torch.cat([torch.full((2, 3, 5, 3), 0.25), torch.full((2, 3, 5, 3), 0.75)])
    stereo[1] = 0.5  # the second left view differs, to check pairing
    (out,) = node("StereoSideBySide").execute(
        stereo=stereo, layout="parallel", swap_eyes=False, divider=1, divider_brightness=1.0
    ).result
    assert out.shape == (2, 3, 11, 3)
    assert torch.all(out[0, :, :5] == 0.25) and torch.all(out[1, :, :5] == 0.5)
    assert torch.all(out[:, :, 5] == 1.0) and torch.all(out[:, :, 6:] == 0.75)
    (half,) = node("StereoSideBySide").execute(
        stereo=stereo, layout="top-bottom-half", swap_eyes=True, divider=0, divider_brightness=0.0
    ).result
    assert half.shape == (2, 3, 5, 3)
    # Rows: right right right | left left left -> pairs (R,R) (R,L) (L,L)
    assert half[0, :, 0, 0].tolist() == [0.75, 0.5, 0.25]


def test_anaglyph_node_takes_red_from_the_left(pack):
    stereo = torch.zeros(2, 1, 1, 3)
    stereo[0] = torch.tensor([0.8, 0.4, 0.2])
    stereo[1] = torch.tensor([0.1, 0.6, 0.9])
    (out,) = node("StereoAnaglyph").execute(stereo=stereo, method="color", swap_eyes=False).result
    assert torch.allclose(out.flatten(), torch.tensor([0.8, 0.6, 0.9]))
    (swapped,) = node("StereoAnaglyph").execute(stereo=stereo, method="color", swap_eyes=True).result
    assert torch.allclose(swapped.flatten(), torch.tensor([0.1, 0.4, 0.2]))


@pytest.mark.parametrize("node_id,kwargs", [
    ("StereoSideBySide", {"layout": "parallel", "swap_eyes": False, "divider": 0, "divider_brightness": 0.0}),
    ("StereoAnaglyph", {"method": "dubois", "swap_eyes": False}),
])
def test_odd_stereo_batch_is_a_clear_error(pack, node_id, kwargs):
    with pytest.raises(ValueError, match="stereo batch of even size.*StereoJoin"):
        node(node_id).execute(stereo=torch.zeros(3, 2, 2, 3), **kwargs)


def test_join_of_different_sizes_is_a_clear_error(pack):
    with pytest.raises(ValueError, match="same shape"):
        node("StereoJoin").execute(left=torch.zeros(1, 2, 2, 3), right=torch.zeros(1, 2, 3, 3))


@pytest.mark.parametrize("layout,suffix,size", [
    ("parallel", "_LRF_Full_SBS", (10, 3)),
    ("parallel-half", "_LR", (5, 3)),
    ("cross-eyed", "_RLF_Full_SBS", (10, 3)),
    ("top-bottom-half", "_TB", (5, 3)),
    ("anaglyph", "_redcyan", (5, 3)),
])
def test_save_writes_vr_named_pngs_with_the_workflow(output_dirs, layout, suffix, size):
    out_dir, temp_dir = output_dirs
    workflow = {"nodes": [{"id": 4, "type": "StereoSaveImage"}], "version": 0.4}
    prompt = stereo_prompt({"layout": layout})
    outputs = run_prompt(prompt, {"extra_pnginfo": {"workflow": workflow}})
    ui = outputs["4"]
    assert ui["stereo_images"] == [{"filename": f"pair_00001{suffix}.png", "subfolder": "", "type": "output"}]
    png = Image.open(out_dir / f"pair_00001{suffix}.png")
    assert png.size == size
    assert json.loads(png.text["workflow"]) == workflow
    assert json.loads(png.text["prompt"])["4"]["inputs"]["layout"] == layout
    if layout == "parallel":
        assert png.getpixel((0, 0)) == (255, 0, 0) and png.getpixel((9, 2)) == (0, 0, 255)
    if layout == "cross-eyed":
        assert png.getpixel((0, 0)) == (0, 0, 255) and png.getpixel((9, 2)) == (255, 0, 0)
    # The viewer gets both eyes at full size from the temp folder.
    (views,) = ui["stereo_views"]
    left = Image.open(temp_dir / views["left"]["filename"])
    right = Image.open(temp_dir / views["right"]["filename"])
    assert views["left"]["type"] == "temp" and left.size == (5, 3)
    assert left.getpixel((2, 1)) == (255, 0, 0) and right.getpixel((2, 1)) == (0, 0, 255)


def test_save_numbers_files_on_and_writes_stereo_mpo_per_pair(output_dirs):
    out_dir, _ = output_dirs
    prompt = stereo_prompt({"save_mpo": True, "filename_prefix": "trip/%width%"}, width=7, height=5, batch=2)
    ui = run_prompt(prompt)["4"]
    # %width% is the width of the saved frame (parallel: 2 x 7).
    assert [r["filename"] for r in ui["stereo_images"]] == ["14_00001_LRF_Full_SBS.png", "14_00002_LRF_Full_SBS.png"]
    assert all(r["subfolder"] == "trip" for r in ui["stereo_images"])
    assert [r["filename"] for r in ui["stereo_mpo"]] == ["14_00001.mpo", "14_00002.mpo"]
    assert len(ui["stereo_views"]) == 2
    mpo = Image.open(out_dir / "trip" / "14_00002.mpo")
    assert mpo.format == "MPO" and mpo.n_frames == 2 and mpo.size == (7, 5)
    entries = mpo.mpinfo[0xB002]
    assert [e["Attribute"]["MPType"] for e in entries] == ["Multi-Frame Image: (Disparity)"] * 2
    r, g, b = mpo.convert("RGB").getpixel((3, 2))
    assert r > 240 and g < 15 and b < 15  # JPEG: nearly red
    mpo.seek(1)
    r, g, b = mpo.convert("RGB").getpixel((3, 2))
    assert b > 240 and r < 15 and g < 15
    # A second run continues the numbering instead of overwriting.
    again = run_prompt(stereo_prompt({"filename_prefix": "trip/%width%", "save_mpo": False}, width=7, height=5))["4"]
    assert again["stereo_images"][0]["filename"] == "14_00003_LRF_Full_SBS.png"
    assert "stereo_mpo" not in again


def test_save_leaves_metadata_out_without_a_workflow(output_dirs):
    out_dir, _ = output_dirs
    ui = run_prompt(stereo_prompt({}))["4"]
    png = Image.open(out_dir / ui["stereo_images"][0]["filename"])
    assert "workflow" not in png.text and "prompt" in png.text


def test_stereo_mpo_bytes_are_readable_without_the_host():
    from stereo_pack.stereo_ops import stereo_mpo_bytes

    left, right = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 255, 0))
    mpo = Image.open(io.BytesIO(stereo_mpo_bytes(left, right)))
    assert mpo.n_frames == 2 and mpo.mpinfo[0xB002][0]["Attribute"]["RepresentativeImageFlag"]
    with pytest.raises(ValueError, match="same size"):
        stereo_mpo_bytes(left, Image.new("RGB", (5, 4)))
