"""The pack loads through the host's own custom-node loader and registers its node ids."""

import torch

# The public node ids of ../shared/DESIGN.md that have landed so far.
PUBLIC_NODE_IDS = {
    "StereoSplit", "StereoJoin", "StereoSideBySide", "StereoAnaglyph", "StereoSaveImage",
    "StereoNullTextInversion", "StereoKSampler", "StereoSampler", "StereoAttentionPatch",
    "StereoDisparityModelLoader", "StereoEstimateDisparity", "StereoDepthToDisparity",
    "StereoSaveVideo", "StereoCheck", "StereoWarp", "StereoRefine", "StereoDisplayTarget", "StereoVideoFill",
    "StereoSamplerDisparity", "StereoConvertVideoFile",
}


def test_pack_registers_its_nodes_in_the_host(pack):
    import nodes

    for node_id in PUBLIC_NODE_IDS:
        assert node_id in nodes.NODE_CLASS_MAPPINGS, f"{node_id} not registered"
        schema = nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA()
        assert schema.category.startswith("stereo/")
        assert schema.description
        for inp in schema.inputs:
            assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"


def test_split_and_join_round_trip_through_the_host_node_api(pack):
    import nodes

    split = nodes.NODE_CLASS_MAPPINGS["StereoSplit"]
    join = nodes.NODE_CLASS_MAPPINGS["StereoJoin"]
    images = torch.rand(4, 5, 7, 3)
    left, right = split.execute(stereo=images).result
    assert torch.equal(left, images[:2]) and torch.equal(right, images[2:])
    assert torch.equal(join.execute(left=left, right=right).result[0], images)


def test_tiny_models_sample_in_the_host(tiny_sd15, tiny_sdxl):
    import comfy.sample
    from testkit.tiny_models import tiny_conditioning

    for model, kind in ((tiny_sd15, "sd15"), (tiny_sdxl, "sdxl")):
        latent = torch.zeros(1, 4, 8, 12)
        noise = torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(0))
        out = comfy.sample.sample(
            model, noise, 3, 5.0, "euler", "normal",
            tiny_conditioning(kind, seed=1), tiny_conditioning(kind, seed=2), latent,
        )
        assert out.shape == (1, 4, 8, 12) and torch.isfinite(out).all()
        assert not torch.equal(out, latent)
