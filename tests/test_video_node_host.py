"""Stereo Save Video in the real host: a clip with sound through the host's Load Video and Get Video
Components, saved as a tagged stereo MP4 with the clip's frame rate and audio."""

from __future__ import annotations

import numpy as np
import pytest

from headless import prompt_execution
from stereo_pack.stereo_ops.spherical_video import read_spherical_metadata
from testkit.host_folders import host_folders, load_host_video_nodes

av = pytest.importorskip("av")

FRAMES, FPS, W, H, RATE = 5, 10, 48, 32, 16000


def _write_clip_with_sound(path) -> None:
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        sound = container.add_stream("aac", rate=RATE, layout="mono")
        y, x = np.mgrid[0:H, 0:W]
        for t in range(FRAMES):
            rgb = np.stack([(x * 5 + 30 * t) % 255, y * 7, (x + y) % 255], -1).astype(np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        container.mux(sound.encode(frame))
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


@pytest.fixture()
def dirs(host, pack, tmp_path):
    load_host_video_nodes(host)
    with host_folders(tmp_path):
        _write_clip_with_sound(tmp_path / "in" / "clip.mp4")
        yield tmp_path


def prompt(**save) -> dict:
    """The clip as its own left view and its negative as the right view."""
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "StereoJoin", "inputs": {"left": ["2", 0], "right": ["3", 0]}},
        "5": {"class_type": "StereoSaveVideo", "inputs": {
            "stereo": ["4", 0], "filename_prefix": "video/clip", "frame_rate": ["2", 2], "layout": "parallel",
            "format": "stereo MP4", "vr180_fov": 90.0, "crf": 18, "audio": ["2", 1], **save}},
    }


def test_saves_a_tagged_stereo_video_with_the_clips_rate_and_sound(dirs):
    outputs = prompt_execution.run_prompt(prompt())
    saved = outputs["5"]["images"][0]
    assert saved["filename"] == "clip_00001_LRF_Full_SBS.mp4" and saved["subfolder"] == "video"
    path = dirs / "out" / "video" / saved["filename"]
    assert read_spherical_metadata(path).stereo_mode == 2
    with av.open(str(path)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert float(video.average_rate) == FPS
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video)]
        assert "prompt" in container.metadata and sound.codec_context.name == "aac"
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert len(frames) == FRAMES and frames[0].shape == (H, 2 * W, 3)
    left, right = frames[2][:, :W], frames[2][:, W:]
    assert np.abs(255 - left - right).mean() < 6 < np.abs(left - right).mean()  # right is the negative
    assert abs(samples - FRAMES / FPS * RATE) <= 1024  # the sound is cut at the picture's end


def test_vr180_through_the_host_writes_sv3d_and_the_player_name(dirs):
    outputs = prompt_execution.run_prompt(prompt(format="VR180 MP4", layout="top-bottom"))
    saved = outputs["5"]["images"][0]
    assert saved["filename"] == "clip_00001_180_TB.mp4"
    meta = read_spherical_metadata(dirs / "out" / "video" / saved["filename"])
    assert meta.stereo_mode == 1 and meta.bounds == (0, 0, 0x40000000, 0x40000000)


def test_spatial_video_says_what_is_missing(dirs):
    from stereo_pack.stereo_ops.stereo_video import mv_hevc_encoder

    with pytest.raises(prompt_execution.PromptError, match="MV-HEVC"):
        prompt_execution.run_prompt(prompt(format="Apple spatial video (MV-HEVC)"))
    if mv_hevc_encoder() is None:
        assert not list((dirs / "out").rglob("*.mp4"))


def test_save_image_vr180_writes_equirect_eyes_named_for_players(dirs):
    """Stereo Save Image in the VR180 format: a 2:1 PNG of two square 180-degree eyes, the picture in the middle
    of each and black around it, named _180_LR."""
    from PIL import Image

    red, blue = 0xFF0000, 0x0000FF
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 36, "batch_size": 1, "color": red}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 36, "batch_size": 1, "color": blue}},
        "3": {"class_type": "StereoJoin", "inputs": {"left": ["1", 0], "right": ["2", 0]}},
        "4": {"class_type": "StereoSaveImage", "inputs": {
            "stereo": ["3", 0], "filename_prefix": "vr", "layout": "parallel", "anaglyph_method": "dubois",
            "save_mpo": False, "format": "VR180 (png)", "vr180_fov": 60.0}},
    }
    outputs = prompt_execution.run_prompt(graph)
    (png,) = outputs["4"]["stereo_images"]
    assert png["filename"] == "vr_00001_180_LR.png"
    image = np.asarray(Image.open(dirs / "out" / png["filename"]).convert("RGB")).astype(int)
    h, w, _ = image.shape
    assert w == 2 * h  # two square 180 x 180 views
    left, right = image[:, : w // 2], image[:, w // 2:]
    assert tuple(left[h // 2, h // 2]) == (255, 0, 0) and tuple(right[h // 2, h // 2]) == (0, 0, 255)
    assert left[0, 0].max() == 0 and right[h // 2, 2].max() == 0  # outside the 60-degree screen: black


def test_save_image_vr180_refuses_layouts_players_cannot_read(dirs):
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "StereoSaveImage", "inputs": {
            "stereo": ["1", 0], "filename_prefix": "vr", "layout": "cross-eyed", "anaglyph_method": "dubois",
            "save_mpo": False, "format": "VR180 (png)"}},
    }
    with pytest.raises(prompt_execution.PromptError, match="format VR180 needs the parallel or top-bottom"):
        prompt_execution.run_prompt(graph)
