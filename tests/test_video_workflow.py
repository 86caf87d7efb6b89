"""The shipped video workflow end to end in the host: a few tiny frames in, a side-by-side video out
that players recognise (st3d in the video track, the player name), with the clip's frame count and
frame rate; tiny models throughout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from headless import comfy_host, prompt_execution, workflow_to_api
from stereo_pack.stereo_ops.spherical_video import read_spherical_metadata
from testkit import tiny_checkpoints
from testkit.host_folders import host_folders, load_host_video_nodes

SHIPPED = comfy_host.PACK_DIR / "examples_workflows" / "Video to stereo (side by side).json"
TINY_VDA = "video_depth_anything_vits.pth"  # the shipped file name, holding a tiny network
FRAMES, FPS, W, H = 3, 8, 64, 40

pytest.importorskip("timm")
av = pytest.importorskip("av")


def _write_clip(path) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        y, x = np.mgrid[0:64, 0:96]
        for t in range(FRAMES):
            rgb = np.stack([(x * 2 + 20 * t) % 255, y * 3, (x + y) % 255], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture()
def setup(host, pack, tmp_path):
    from testkit import tiny_depth

    load_host_video_nodes(host)
    tiny = tiny_checkpoints.tiny_models()
    vda = tiny.root / "depthanything" / TINY_VDA
    if not vda.exists():
        tiny_depth.write_tiny_video_depth_anything(vda)
    with host_folders(tmp_path):
        _write_clip(tmp_path / "in" / "example.mp4")
        yield tiny, tmp_path


def test_video_workflow_writes_a_side_by_side_video_for_vr_players(setup):
    import nodes

    tiny, root = setup
    prompt = workflow_to_api.workflow_to_api(json.loads(SHIPPED.read_text()), nodes.NODE_CLASS_MAPPINGS)
    kinds = {node["class_type"] for node in prompt.values()}
    assert {"LoadVideo", "GetVideoComponents", "StereoEstimateDisparity", "StereoKSampler", "StereoSaveVideo"} <= kinds
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = tiny.sd15
        if kind == "StereoDisparityModelLoader":
            assert inputs["model_name"] == f"depthanything/{TINY_VDA}"
            inputs["download_if_missing"] = False
        if "steps" in inputs:
            inputs["steps"] = 3
        if kind == "ImageScale":
            inputs["width"], inputs["height"] = W, H
        if kind == "StereoEstimateDisparity":
            inputs["resolution"] = 42
    prompt_execution.run_prompt(prompt, prompt_execution.new_executor())

    videos = sorted((root / "out" / "video").glob("*.mp4"))
    assert [v.name for v in videos] == ["video_to_stereo_00001_LRF_Full_SBS.mp4"]
    assert read_spherical_metadata(videos[0]).stereo_mode == 2  # st3d: left-right
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(FPS)
    assert len(frames) == FRAMES
    assert frames[0].shape == (H, 2 * W, 3)  # parallel side by side: left | right
    left, right = frames[0][:, :W], frames[0][:, W:]
    assert np.abs(left - right).mean() > 0.5, "the right view is a copy of the left one"


FAST = comfy_host.PACK_DIR / "examples_workflows" / "Video to stereo fast (warp + fill).json"


def test_fast_video_workflow_warps_fills_and_writes_a_side_by_side_video(setup):
    import nodes

    tiny, root = setup
    prompt = workflow_to_api.workflow_to_api(json.loads(FAST.read_text()), nodes.NODE_CLASS_MAPPINGS)
    kinds = {node["class_type"] for node in prompt.values()}
    assert {"LoadVideo", "StereoEstimateDisparity", "StereoWarp", "StereoVideoFill", "StereoSaveVideo"} <= kinds
    assert "StereoKSampler" not in kinds
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "StereoDisparityModelLoader":
            assert inputs["model_name"] == f"depthanything/{TINY_VDA}"
            inputs["download_if_missing"] = False
        if kind == "StereoEstimateDisparity":
            inputs["resolution"] = 42
    prompt_execution.run_prompt(prompt, prompt_execution.new_executor())

    videos = sorted((root / "out" / "video").glob("*.mp4"))
    assert [v.name for v in videos] == ["video_to_stereo_fast_00001_LRF_Full_SBS.mp4"]
    with av.open(str(videos[0])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(stream)]
        assert float(stream.average_rate) == pytest.approx(FPS)
    assert len(frames) == FRAMES
    assert frames[0].shape == (64, 2 * 96, 3)  # the clip's own size, parallel side by side
    left, right = frames[0][:, :96], frames[0][:, 96:]
    assert np.abs(left - right).mean() > 0.5, "the right view is a copy of the left one"
    assert (frames[0] < 8).all(-1).mean() < 0.01, "black holes left unfilled"
