"""Stereo Display Target and the display input of the samplers and warps, in the real host."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from stereo_pack.stereo_ops.comfort import DISPLAY_PRESETS, parallax_budget, parallax_range
from stereo_pack.stereo_ops.stereo_geometry import DisplayTarget, geometry_for
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene
from stereo_pack.stereo_ops.warp import refine_right, stereo_warp
from testkit.tiny_models import tiny_conditioning

pytestmark = pytest.mark.usefixtures("pack")

GEOMETRY_NODES = ("StereoKSampler", "StereoSampler", "StereoWarp", "StereoRefine")
VR_BUDGET = parallax_budget(DISPLAY_PRESETS["VR headset"])


def _node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]


def _target(preset="VR headset", floating_window=True, **custom):
    args = dict(preset=preset, floating_window=floating_window, screen_width_m=1.44, viewing_distance_m=3.0,
                eye_separation_mm=63.0)
    args.update(custom)
    return _node("StereoDisplayTarget").execute(**args).result


def _defaults(node_id):
    return {i.id: getattr(i, "default", None) for i in _node(node_id).GET_SCHEMA().inputs}


def test_display_target_node_schema_and_outputs():
    schema = _node("StereoDisplayTarget").GET_SCHEMA()
    assert schema.category == "stereo/comfort" and schema.description
    assert all(i.tooltip for i in schema.inputs)
    target, summary = _target()
    assert isinstance(target, DisplayTarget) and target.display == DISPLAY_PRESETS["VR headset"]
    assert target.floating_window
    assert f"{VR_BUDGET.crossed_pct:.2f} %" in summary and "VR headset" in summary
    custom, text = _target("custom", False, screen_width_m=2.0, viewing_distance_m=4.0, eye_separation_mm=58.0)
    assert (custom.display.screen_width_m, custom.display.viewing_distance_m) == (2.0, 4.0)
    assert custom.display.eye_separation_m == pytest.approx(0.058) and not custom.floating_window
    assert "off" in text


def test_display_target_node_names_bad_inputs():
    with pytest.raises(ValueError, match="^preset"):
        _target("IMAX")
    with pytest.raises(ValueError, match="^screen_width"):
        _target("custom", screen_width_m=0.0)


@pytest.mark.parametrize("node_id", GEOMETRY_NODES)
def test_every_node_default_is_within_the_vr_headset_budget(node_id):
    defaults = _defaults(node_id)
    r = parallax_range(defaults["divergence"], defaults["convergence"], 0.0, 1.0)
    assert r.total_pct <= 3.0 and r.crossed_pct <= 2.0
    assert VR_BUDGET.allows(r)
    schema = _node(node_id).GET_SCHEMA()
    display = [i for i in schema.inputs if i.id == "display"]
    # Among the inputs added after the required ones (and after the older optional ones), so saved
    # workflows load: everything from display on is optional.
    after = schema.inputs[[i.id for i in schema.inputs].index("display"):]
    assert display and all(i.optional for i in after)
    for name in ("divergence", "convergence"):
        tooltip = next(i.tooltip for i in schema.inputs if i.id == name)
        assert "Ignored when a display target is connected" in tooltip


def test_stereo_warp_node_with_a_display_uses_the_automatic_geometry():
    scene = layered_scene(40, 64, 1.0, 0.0, 0.0)
    image = scene.center.image.float().permute(0, 2, 3, 1).contiguous()
    d = scene.disparity.float()
    target, _ = _target()
    outs = [
        _node("StereoWarp").execute(image=image, disparity=d, divergence=div, convergence=conv, balance=0.0,
                                    grow_holes=0, display=target).result[0]
        for div, conv in ((8.0, 0.0), (1.0, 1.0))
    ]
    assert torch.equal(outs[0], outs[1])  # the typed settings are ignored
    g = geometry_for(d, 0.0, 0.0, target)
    expected = stereo_warp(scene.center.image.float(), d, g.divergence, g.convergence, 0.0, True).right.image
    assert torch.equal(outs[0][1:], expected.permute(0, 2, 3, 1))
    r = parallax_range(g.divergence, g.convergence, float(d.min()), float(d.max()))
    assert VR_BUDGET.allows(r, tolerance_pct=0.05)


def test_stereo_refine_node_with_a_display_matches_the_warp_with_the_same_geometry():
    scene = layered_scene(40, 64, 1.0, 0.0, 0.0)
    left = scene.center.image.float()
    stereo = torch.cat([left, torch.rand_like(left)]).permute(0, 2, 3, 1).contiguous()
    d = scene.disparity.float()
    target, _ = _target()
    refined = _node("StereoRefine").execute(stereo=stereo, disparity=d, divergence=8.0, convergence=0.0,
                                            balance=0.0, feather=2, display=target).result[0]
    g = geometry_for(d, 0.0, 0.0, target)
    expected, _ = refine_right(left, stereo[1:].permute(0, 3, 1, 2), d, g.divergence, g.convergence, 0.0, 2, True)
    assert torch.equal(refined[1:], expected.permute(0, 2, 3, 1))


def _sample_args(model):
    return dict(
        model=model, positive=tiny_conditioning("sd15", seed=1), negative=tiny_conditioning("sd15", seed=2),
        latent_image={"samples": torch.zeros(1, 4, 8, 12)}, divergence=8.0, convergence=0.0,
        subpixel=True, balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True, seed=42, steps=6,
        cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0, eyes="separate",
    )


def _sample(model, disparity, **kw):
    args = {**_sample_args(model), "disparity": disparity, **kw}
    return _node("StereoKSampler").execute(**args).result[0]["samples"]


def _logged_geometries(caplog):
    return [m.group(1) for r in caplog.records if (m := re.search(r": (divergence .*) for display", r.getMessage()))]


def test_sampler_with_a_display_samples_with_the_automatic_settings_and_says_them(tiny_sd15, caplog):
    g = torch.Generator().manual_seed(3)
    disparity = 0.2 + 0.6 * torch.rand(1, 64, 96, generator=g)  # a map that does not fill 0..1
    target, _ = _target(floating_window=False)
    with caplog.at_level(logging.INFO, logger="StereoDiffusion"):
        auto = _sample(tiny_sd15, disparity, display=target)
    geometry = geometry_for(disparity, 0.0, 0.0, target)
    assert geometry.divergence > 3.0  # stretched to the budget: the map spans less than 0..1
    explicit = _sample(tiny_sd15, disparity, divergence=geometry.divergence, convergence=geometry.convergence)
    assert torch.equal(auto, explicit)
    assert _logged_geometries(caplog) == [geometry.describe()]


def test_sampler_and_refine_given_one_display_and_one_map_use_one_geometry(tiny_sd15, caplog):
    scene = layered_scene(64, 96, 1.0, 0.0, 0.0)
    disparity = scene.disparity.float()
    target, _ = _target(floating_window=True)
    with caplog.at_level(logging.INFO, logger="StereoDiffusion"):
        _sample(tiny_sd15, disparity, display=target)
        _node("StereoRefine").execute(
            stereo=torch.rand(2, 64, 96, 3), disparity=disparity, divergence=3.0, convergence=0.2, balance=0.0,
            feather=2, display=target,
        )
    logged = _logged_geometries(caplog)
    assert len(logged) == 2 and logged[0] == logged[1] and "floating window" in logged[0]


def test_stereo_sampler_node_carries_the_display_target():
    target, _ = _target()
    sampler = _node("StereoSampler").execute(
        sampler_name="euler", divergence=8.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
        spsmd=True, spsmd_interval=0.2, deblur=True, disparity=torch.rand(1, 16, 16), display=target,
    ).result[0]
    assert sampler.stereo_given_map is not None
    with pytest.raises(ValueError, match="^display"):
        _node("StereoSampler").execute(
            sampler_name="euler", divergence=8.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
            spsmd=True, spsmd_interval=0.2, deblur=True, disparity=torch.rand(1, 16, 16), display="VR headset",
        )


def test_every_shipped_workflow_is_within_the_vr_headset_budget(pack):
    """Each sampler, warp and refine of the shipped workflows gets its depth from a Stereo Display
    Target set to the VR headset (whose budget is within 3 % of the width, at most 2 % crossed), or
    has typed settings within that budget."""
    import json

    import nodes
    from headless import comfy_host, workflow_to_api
    from test_example_workflows import ensure_host_extra_nodes

    assert VR_BUDGET.total_pct <= 3.0 and VR_BUDGET.crossed_pct <= 2.0
    ensure_host_extra_nodes(pack)
    files = sorted((comfy_host.PACK_DIR / "examples_workflows").glob("*.json"))
    assert files
    checked = 0
    for path in files:
        prompt = workflow_to_api.workflow_to_api(json.loads(path.read_text()), nodes.NODE_CLASS_MAPPINGS)
        for node_id, node in prompt.items():
            if node["class_type"] not in GEOMETRY_NODES:
                continue
            checked += 1
            inputs = node["inputs"]
            where = f"{path.name} node {node_id} ({node['class_type']})"
            assert "display" in inputs, f"{where} has no display target"
            target = prompt[str(inputs["display"][0])]
            assert target["class_type"] == "StereoDisplayTarget", where
            assert target["inputs"]["preset"] == "VR headset", where
            # and the typed settings, used if the target is disconnected, are within the budget too
            r = parallax_range(inputs["divergence"], inputs["convergence"], 0.0, 1.0)
            assert VR_BUDGET.allows(r), where
    assert checked >= len(files)


@pytest.fixture(scope="module")
def one_pass_parts(pack, tmp_path_factory):
    """A tiny depth network and a TAESD decoder, for one-pass disparity."""
    pytest.importorskip("timm")
    import comfy.sd
    import folder_paths
    from comfy.taesd.taesd import TAESD

    from testkit.random_weights import fill_random
    from testkit.tiny_depth import write_tiny_depth_anything

    folder = tmp_path_factory.mktemp("depthanything")
    write_tiny_depth_anything(folder / "tiny_depth.safetensors")
    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    folder_paths.folder_names_and_paths["depthanything"] = ([str(folder), *paths], exts)
    folder_paths.filename_list_cache.clear()
    try:
        depth = _node("StereoDisparityModelLoader").execute(
            model_name="depthanything/tiny_depth.safetensors", precision="fp32", download_if_missing=False).result[0]
    finally:
        folder_paths.folder_names_and_paths["depthanything"] = (paths, exts)
        folder_paths.filename_list_cache.clear()
    decoder = TAESD(latent_channels=4)
    fill_random(decoder, seed=3)
    return depth, comfy.sd.VAE(sd=decoder.state_dict())


def test_one_pass_sampler_derives_its_geometry_from_the_map_it_estimated(tiny_sd15, one_pass_parts, caplog):
    depth, vae = one_pass_parts
    target, _ = _target(floating_window=False)
    kw = dict(disparity=None, disparity_model=depth, vae=vae, latent_image={"samples": torch.zeros(2, 4, 8, 12)})
    with caplog.at_level(logging.INFO, logger="StereoDiffusion"):
        result = _node("StereoKSampler").execute(**{**_sample_args(tiny_sd15), **kw, "display": target}).result
    auto, estimated = result[0]["samples"], result[1]
    geometry = geometry_for(estimated, 0.0, 0.0, target)  # one range for both images
    assert _logged_geometries(caplog) == [geometry.describe()]
    # The map is estimated before the shift, whatever the settings: typed by hand, they give the same pair.
    explicit = _node("StereoKSampler").execute(**{
        **_sample_args(tiny_sd15), **kw, "divergence": geometry.divergence, "convergence": geometry.convergence,
    }).result[0]["samples"]
    assert torch.equal(auto, explicit)
