"""The headless runner's --servers path against two real ComfyUI servers on 127.0.0.1: segments of
one file converted at once, joined into one file that matches the file converted whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from browser_harness import ServerEnvironmentError, start_server, stop_server
from headless.segment_servers import SegmentError, Server, convert_on_servers, split_frames
from test_video_stream_host import FRAMES, H, W, decode, psnr, write_clip

av = pytest.importorskip("av")
pytest.importorskip("timm")


def prompt(video="clip.mp4") -> dict:
    return {
        "1": {"class_type": "StereoDisparityModelLoader", "inputs": {
            "model_name": "depthanything/tiny_depth.safetensors", "precision": "fp32", "download_if_missing": False}},
        "2": {"class_type": "StereoConvertVideoFile", "inputs": {
            "video": video, "disparity_model": ["1", 0], "filename_prefix": "video/clip", "divergence": 4.0,
            "convergence": 0.5, "temporal_smoothing": 0.5, "scale_window": 4, "scene_cut_sensitivity": 1.0,
            "first_frame": 0, "frame_count": 0, "layout": "parallel", "format": "stereo MP4", "vr180_fov": 90.0,
            "crf": 0, "audio": True, "resolution": 56, "batch_size": 4}},
    }


def test_split_frames_covers_every_frame_once():
    assert split_frames(30, 3) == [(0, 10), (10, 10), (20, 0)]
    assert split_frames(2, 5) == [(0, 1), (1, 0)]
    with pytest.raises(SegmentError, match="frame count"):
        split_frames(0, 2)


@pytest.fixture(scope="module")
def servers(host, tmp_path_factory):
    from testkit.tiny_depth import write_tiny_depth_anything

    bases = [tmp_path_factory.mktemp(f"server{i}") for i in range(2)]
    for base in bases:
        write_tiny_depth_anything(base / "models" / "depthanything" / "tiny_depth.safetensors", seed=1)
    try:
        with ThreadPoolExecutor(2) as pool:
            started = list(pool.map(lambda b: start_server(host, b), bases))
    except ServerEnvironmentError as exc:
        pytest.skip(str(exc))
    yield started
    for server in started:
        stop_server(server)


def test_two_servers_convert_segments_that_join_into_the_whole(servers, tmp_path):
    from stereo_pack.stereo_ops.spherical_video import read_spherical_metadata

    video = tmp_path / "clip.mp4"
    write_clip(video)
    joined = convert_on_servers(prompt(), [s.base_url for s in servers], video, tmp_path / "joined.mp4",
                                segments=3, poll=0.2, log=lambda _: None)
    one = Server(servers[0].base_url)
    outputs = one.wait(one.submit(prompt()), poll=0.2)
    whole = one.download(outputs["2"]["images"][0], tmp_path / "whole.mp4")
    a, b = decode(whole), decode(joined)
    assert a.shape == b.shape == (FRAMES, H, 2 * W, 3)
    assert min(psnr(x, y) for x, y in zip(a, b)) > 40
    assert read_spherical_metadata(joined).stereo_mode == 2
    assert not list(tmp_path.glob("segments-*"))  # the downloaded segments are cleaned up


def test_a_failing_segment_reports_the_servers_message(servers, tmp_path):
    video = tmp_path / "clip.mp4"
    write_clip(video)
    with pytest.raises(SegmentError, match="first_frame .* is past the end"):
        convert_on_servers(prompt(), [servers[1].base_url], video, tmp_path / "joined.mp4", frames=100,
                           segments=2, poll=0.2, log=lambda _: None)


def test_the_runner_cli_joins_the_segments_of_two_servers(host, servers, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from headless import comfy_host
    from stereo_pack.stereo_ops.spherical_video import read_spherical_metadata

    video = tmp_path / "film.mp4"
    write_clip(video)
    workflow = tmp_path / "convert.json"
    workflow.write_text(json.dumps(prompt()))
    cmd = [sys.executable, "-m", "headless.run_workflow", str(workflow), "--comfyui", str(host), "--cpu",
           "--no-custom-nodes", "--video", str(video), "--servers", ",".join(s.base_url for s in servers),
           "--output", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    result = subprocess.run(cmd, cwd=comfy_host.PACK_DIR, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    joined = tmp_path / "out" / "film_stereo_LRF_Full_SBS.mp4"
    assert result.stdout.strip().splitlines()[-1] == f"film.mp4 -> {joined}"
    assert decode(joined).shape == (FRAMES, H, 2 * W, 3)
    assert read_spherical_metadata(joined).stereo_mode == 2
