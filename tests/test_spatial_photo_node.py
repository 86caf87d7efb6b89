"""Stereo Save Image's spatial photo (HEIC) format in the real host: N pairs make N files in the
output folder, each a spatial photo with the left eye first; clear errors before anything is written."""

from __future__ import annotations

import io
import sys

import pytest
from PIL import Image

from headless.prompt_execution import PromptError, run_prompt

pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a test extra (pip install .[test])")

RED, BLUE = 0xFF0000, 0x0000FF
SPATIAL = "spatial photo (HEIC)"


@pytest.fixture
def output_dir(pack, tmp_path):
    import folder_paths

    old_out, old_temp = folder_paths.get_output_directory(), folder_paths.get_temp_directory()
    (tmp_path / "output").mkdir()
    (tmp_path / "temp").mkdir()
    folder_paths.set_output_directory(str(tmp_path / "output"))
    folder_paths.set_temp_directory(str(tmp_path / "temp"))
    yield tmp_path / "output"
    folder_paths.set_output_directory(old_out)
    folder_paths.set_temp_directory(old_temp)


def spatial_prompt(width=8, height=6, batch=2, **save_inputs) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch, "color": RED}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": batch, "color": BLUE}},
        "3": {"class_type": "StereoJoin", "inputs": {"left": ["1", 0], "right": ["2", 0]}},
        "4": {
            "class_type": "StereoSaveImage",
            "inputs": {
                "stereo": ["3", 0], "filename_prefix": "trip/pair", "layout": "parallel",
                "anaglyph_method": "dubois", "save_mpo": False, "format": SPATIAL, **save_inputs,
            },
        },
    }


def test_each_pair_becomes_one_spatial_photo(output_dir):
    from stereo_pack.stereo_ops import read_spatial_photo

    ui = run_prompt(spatial_prompt())["4"]
    assert ui["stereo_spatial"] == [
        {"filename": f"pair_0000{i}_spatial.heic", "subfolder": "trip", "type": "output"} for i in (1, 2)
    ]
    assert "stereo_images" not in ui and len(ui["stereo_views"]) == 2
    assert sorted(p.name for p in output_dir.rglob("*") if p.is_file()) == ["pair_00001_spatial.heic", "pair_00002_spatial.heic"]
    for entry in ui["stereo_spatial"]:
        data = (output_dir / "trip" / entry["filename"]).read_bytes()
        heif = pillow_heif.open_heif(io.BytesIO(data))
        assert len(heif) == 2 and heif[0].size == (8, 6)
        left, right = (heif[i].to_pillow().convert("RGB").getpixel((4, 3)) for i in range(2))
        assert left[0] > 240 and left[2] < 15 and right[2] > 240 and right[0] < 15  # left red, right blue
        info = read_spatial_photo(data)
        assert float(info.xmp[info.left_id]["HorizontalDisparityAdjustment"]) == 0.0  # flat: nothing to measure
    # The numbering goes on, as for PNGs.
    again = run_prompt(spatial_prompt(batch=1))["4"]
    assert again["stereo_spatial"][0]["filename"] == "pair_00003_spatial.heic"


def test_odd_sizes_are_refused_before_writing(output_dir):
    with pytest.raises(PromptError, match="stereo: each eye is 7x6.*even width and height"):
        run_prompt(spatial_prompt(width=7))
    assert not [p for p in output_dir.rglob("*") if p.is_file()]


def test_nothing_is_written_outside_the_output_folder(output_dir):
    with pytest.raises(PromptError, match="filename_prefix '.*' climbs out of the output folder"):
        run_prompt(spatial_prompt(filename_prefix="../escaped/pair"))
    assert not (output_dir.parent / "escaped").exists()


def test_missing_pillow_heif_is_one_clear_message(output_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif now fails
    with pytest.raises(PromptError, match="spatial photos \\(HEIC\\) need the pillow-heif package: pip install pillow-heif"):
        run_prompt(spatial_prompt())
    assert not [p for p in output_dir.rglob("*") if p.is_file()]
    ui = run_prompt(spatial_prompt(format="png"))["4"]  # png needs no pillow-heif
    assert Image.open(output_dir / "trip" / ui["stereo_images"][0]["filename"]).size == (16, 6)


def test_display_target_sets_field_of_view_and_baseline(output_dir):
    from stereo_pack.stereo_ops import read_spatial_photo
    from stereo_pack.stereo_ops.comfort import DISPLAY_PRESETS

    prompt = spatial_prompt(batch=1, display=["5", 0])
    prompt["5"] = {
        "class_type": "StereoDisplayTarget",
        "inputs": {"preset": "phone in a viewer", "floating_window": True, "screen_width_m": 1.44,
                   "viewing_distance_m": 3.0, "eye_separation_mm": 63.0},
    }
    ui = run_prompt(prompt)["4"]
    info = read_spatial_photo((output_dir / "trip" / ui["stereo_spatial"][0]["filename"]).read_bytes())
    display = DISPLAY_PRESETS["phone in a viewer"]
    xmp = info.xmp[info.right_id]
    assert float(xmp["HorizontalFOV"]) == pytest.approx(display.horizontal_fov_deg, rel=1e-5)  # 80 degrees
    assert float(xmp["Baseline"]) == pytest.approx(display.eye_separation_m * 1000, rel=1e-5)
    assert info.positions_um[info.right_id] == (round(display.eye_separation_m * 1e6), 0, 0)
