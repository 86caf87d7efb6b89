"""Stereo Check inside the real host: schema, outputs for a batch of pairs, the fix, errors."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace

import pytest
import torch

from stereo_pack.stereo_ops.synthetic_scenes import default_planes, layered_scene


def _node():
    import nodes

    return nodes.NODE_CLASS_MAPPINGS["StereoCheck"]


def _pair(h=96, w=128, divergence=3.0, convergence=0.5):
    planes = tuple(replace(p, detail=1.0) for p in default_planes(h, w))
    scene = layered_scene(h, w, divergence, convergence, planes=planes, dtype=torch.float32)
    return scene.left.image.permute(0, 2, 3, 1), scene.right.image.permute(0, 2, 3, 1)


def test_stereo_check_schema(pack):
    schema = _node().GET_SCHEMA()
    assert schema.category == "stereo/check" and schema.description
    assert [o.id for o in schema.outputs] == ["report", "heat_map", "verdict", "figures", "fixed"]
    for inp in schema.inputs:
        assert inp.tooltip, f"StereoCheck.{inp.id} has no tooltip"


def test_stereo_check_reports_each_pair_and_fixes_the_swapped_one(pack):
    left, right = _pair()
    # Pair 1 correct, pair 2 swapped with its (true) right eye darker.
    stereo = torch.cat([left, right * 0.85, right, left])
    report, heat, verdict, figures, fixed = _node().execute(stereo=stereo, fix=True).result
    pairs = json.loads(figures)
    assert len(pairs) == 2
    assert pairs[0]["eye_order"] == "correct" and pairs[1]["eye_order"] == "swapped"
    assert pairs[1]["verdict"] == "warn" and "eyes swapped" in pairs[1]["warnings"]
    assert pairs[0]["budget"]["display"] == "VR headset"
    lines = verdict.splitlines()
    assert len(lines) == 2 and lines[1].startswith("pair 2: warn") and "eyes swapped" in lines[1]
    assert report.count("Pair ") == 2 and "SWAPPED" in report
    assert heat.shape[0] == 2 and heat.shape[1] > 96 and heat.shape[2] == 128 and heat.shape[3] == 3
    assert fixed.shape == stereo.shape
    assert torch.equal(fixed[0], left[0]) and torch.equal(fixed[1], left[0])  # pair 2's left restored
    assert (fixed[3] - right[0]).abs().mean() < 0.005  # its right eye, brightness matched
    unchanged = _node().execute(stereo=stereo, fix=False).result[4]
    assert unchanged is stereo


def test_stereo_check_uses_the_display_budget_and_a_disparity_map(pack):
    from stereo_pack.stereo_ops.stereo_geometry import display_target

    left, right = _pair()
    stereo = torch.cat([left, right])
    tv = display_target("3D TV or monitor")
    d = torch.rand(1, 96, 128)
    figures = json.loads(_node().execute(stereo=stereo, fix=False, display=tv, disparity=d).result[3])[0]
    assert figures["budget"]["display"] == "3D TV or monitor" and figures["settings_parallax_pct"] is None
    assert figures["budget"]["crossed_budget_pct"] == pytest.approx(tv.budget.crossed_pct)
    assert figures["depth_map_agreement"] is not None
    with_settings = json.loads(
        _node().execute(stereo=stereo, fix=False, disparity=d, divergence=3.0, convergence=0.5).result[3]
    )[0]
    assert with_settings["settings_parallax_pct"]["max"] == pytest.approx(1.5, abs=0.05)
    assert "parallax differs from the settings" in with_settings["warnings"]  # a random map is not the scene's


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stereo": torch.rand(3, 64, 64, 3)}, "stereo must be a stereo batch of even size"),
        ({"stereo": torch.rand(2, 16, 64, 3)}, "stereo images are 64x16"),
        ({"stereo": torch.rand(2, 64, 64, 2)}, "stereo must have 3"),
        ({"stereo": torch.rand(2, 64, 64, 3), "disparity": torch.rand(1, 64, 64) * 9}, "disparity has values"),
        ({"stereo": torch.rand(2, 64, 64, 3), "disparity": torch.rand(3, 64, 64)}, "disparity has 3 maps"),
        ({"stereo": torch.rand(2, 64, 64, 3), "display": "VR"}, "display must come from Stereo Display Target"),
    ],
)
def test_stereo_check_names_the_bad_input(pack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _node().execute(fix=False, **kwargs)


@pytest.fixture
def output_dirs(pack, tmp_path):
    import folder_paths

    old_out, old_temp = folder_paths.get_output_directory(), folder_paths.get_temp_directory()
    out, temp = tmp_path / "output", tmp_path / "temp"
    out.mkdir()
    temp.mkdir()
    folder_paths.set_output_directory(str(out))
    folder_paths.set_temp_directory(str(temp))
    yield out
    folder_paths.set_output_directory(old_out)
    folder_paths.set_temp_directory(old_temp)


def _save(**inputs):
    import nodes
    from comfy_api.latest import io

    node = nodes.NODE_CLASS_MAPPINGS["StereoSaveImage"]
    hidden = {io.Hidden.prompt: {"1": {}}}
    # The host fills the hidden inputs: v0.3.x takes them as they are, v0.8 inside its V3 data.
    v3_data = "v3_data" in inspect.signature(node.PREPARE_CLASS_CLONE).parameters
    save = node.PREPARE_CLASS_CLONE({"hidden_inputs": hidden} if v3_data else hidden)
    return save.execute(filename_prefix="checked", layout="parallel", anaglyph_method="dubois", save_mpo=False, **inputs)


def test_save_writes_the_check_figures_into_each_png_and_the_viewer(output_dirs):
    from PIL import Image

    left, right = _pair()
    stereo = torch.cat([left, right, right, left])  # pair 1 correct, pair 2 swapped
    ui = _save(stereo=stereo).ui
    chunks = [json.loads(Image.open(output_dirs / f["filename"]).text["stereo_check"]) for f in ui["stereo_images"]]
    assert [c["eye_order"] for c in chunks] == ["correct", "swapped"]
    assert all("prompt" in Image.open(output_dirs / f["filename"]).text for f in ui["stereo_images"])
    viewer = ui["stereo_check"]
    assert [v["verdict"] for v in viewer] == [chunks[0]["verdict"], "warn"]
    assert "eyes swapped" in viewer[1]["warnings"]
    assert viewer[0]["min_pct"] == pytest.approx(chunks[0]["parallax_pct"]["min"])

    # Figures from a Stereo Check upstream are written as they are, without checking again.
    figures = _node().execute(stereo=stereo, fix=False).result[3]
    ui = _save(stereo=stereo, check_figures=figures).ui
    again = [json.loads(Image.open(output_dirs / f["filename"]).text["stereo_check"]) for f in ui["stereo_images"]]
    assert again == json.loads(figures)

    ui = _save(stereo=stereo, check=False).ui
    assert "stereo_check" not in Image.open(output_dirs / ui["stereo_images"][0]["filename"]).text
    assert ui["stereo_check"] == []
    with pytest.raises(ValueError, match="check_figures must be Stereo Check's figures for the same 2 pair"):
        _save(stereo=stereo, check_figures="[{}]")
