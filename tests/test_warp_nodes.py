"""StereoWarp and StereoRefine inside the real host: schema, IMAGE/MASK layouts, batches, errors."""

from __future__ import annotations

import pytest
import torch

from stereo_pack.stereo_ops.synthetic_scenes import layered_scene, psnr


def _node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def _as_image(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).float().contiguous()


def test_warp_nodes_are_registered_with_tooltips(pack):
    for node_id in ("StereoWarp", "StereoRefine", "StereoVideoFill"):
        schema = _node(node_id).GET_SCHEMA()
        assert schema.category.startswith("stereo/") and schema.description
        for inp in schema.inputs:
            assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"


def test_stereo_warp_node_makes_a_stereo_batch_and_its_holes(pack):
    scene = layered_scene(48, 80, 8.0, 0.0, 0.5)
    image = _as_image(scene.center.image).repeat(2, 1, 1, 1)
    stereo, holes = _node("StereoWarp").execute(
        image=image, disparity=scene.disparity.float(), divergence=8.0, convergence=0.0, balance=0.5, grow_holes=0
    ).result
    assert stereo.shape == (4, 48, 80, 3) and holes.shape == (4, 48, 80)
    assert stereo.is_contiguous() and holes.dtype == torch.float32
    for i, truth in ((0, scene.left), (2, scene.right)):  # pair 0: left at 0, right at N = 2
        visible = ~truth.holes & ~truth.edge_zone(2)
        assert psnr(stereo[i : i + 1].permute(0, 3, 1, 2), truth.image, visible) >= 45.0
        assert torch.equal(holes[i].bool(), holes[i + 1].bool())  # same image, same holes
    assert holes.sum() > 0
    grown = _node("StereoWarp").execute(
        image=image, disparity=scene.disparity.float(), divergence=8.0, convergence=0.0, balance=0.5, grow_holes=2
    ).result[1]
    assert (grown >= holes).all() and grown.sum() > holes.sum()


def test_stereo_warp_node_explains_an_unnormalised_map(pack):
    with pytest.raises(ValueError, match="Depth to Disparity"):
        _node("StereoWarp").execute(
            image=torch.rand(1, 8, 8, 3), disparity=torch.rand(1, 8, 8) * 5, divergence=8.0,
            convergence=0.0, balance=0.0, grow_holes=0,
        )


def test_stereo_refine_node_transfers_left_detail_to_n_right_eyes(pack):
    scene = layered_scene(48, 80, 8.0, 0.0, 0.0)
    left = _as_image(scene.left.image).repeat(2, 1, 1, 1)
    soft_right = torch.rand_like(left)  # stand-in for the diffusion's right eyes
    stereo = torch.cat([left, soft_right])
    refined, holes = _node("StereoRefine").execute(
        stereo=stereo, disparity=scene.disparity.float(), divergence=8.0, convergence=0.0, balance=0.0, feather=2
    ).result
    assert refined.shape == stereo.shape and holes.shape == (2, 48, 80)
    assert torch.equal(refined[:2], left)  # the left eyes are untouched
    visible = ~scene.right.holes & ~scene.right.edge_zone(2)
    visible &= torch.nn.functional.max_pool2d(holes[:1].unsqueeze(1), 9, 1, 4)[:, 0] == 0
    for i in (2, 3):
        assert psnr(refined[i : i + 1].permute(0, 3, 1, 2), scene.right.image, visible) >= 45.0
        deep = ~torch.nn.functional.max_pool2d(1 - holes[i - 2 : i - 1].unsqueeze(1), 5, 1, 2)[0, 0].bool()
        assert torch.equal(refined[i][deep], soft_right[i - 2][deep])  # the diffusion's pixels, deep in the holes


def test_video_fill_node_fills_only_the_holes_of_a_warped_clip(pack):
    from stereo_pack.stereo_ops.synthetic_scenes import moving_clip

    clip = moving_clip(frames=5, height=40, width=64, camera=(-2.0, 0.0))
    frames = _as_image(clip.center)
    stereo, holes = _node("StereoWarp").execute(
        image=frames, disparity=clip.disparity, divergence=8.0, convergence=0.0, balance=0.5, grow_holes=0
    ).result
    filled, unseen = _node("StereoVideoFill").execute(
        stereo=stereo, holes=holes, disparity=clip.disparity, divergence=8.0, convergence=0.0, balance=0.5
    ).result
    assert filled.shape == stereo.shape and unseen.shape == holes.shape
    assert torch.equal(filled[holes < 0.5], stereo[holes < 0.5])
    assert float(filled[holes > 0.5].mean()) > 0.2  # the black holes got content, in both eyes
    assert bool(((unseen > 0.5) <= (holes > 0.5)).all())
    with pytest.raises(ValueError, match="^holes"):
        _node("StereoVideoFill").execute(
            stereo=stereo, holes=holes[:4], disparity=clip.disparity, divergence=8.0, convergence=0.0, balance=0.5
        )
