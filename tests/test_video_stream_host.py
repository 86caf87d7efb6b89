"""Stereo Convert Video File in the real host: a file with sound to a tagged stereo MP4 as a stream;
segments joined equal the whole; an interrupt keeps a playable file; bad files get clear errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from stereo_pack.stereo_ops.spherical_video import read_spherical_metadata
from testkit.host_folders import host_folders

av = pytest.importorskip("av")
pytest.importorskip("timm")

FRAMES, FPS, W, H, RATE = 30, 10, 64, 36, 16000


def write_clip(path, frames=FRAMES, sound=True, pts=None) -> None:
    """A panning texture (a cut to another texture at frame 20), with a tone."""
    g = np.random.default_rng(0)
    textures = [g.integers(0, 255, (H, W + frames, 3)).astype(np.uint8) for _ in range(2)]
    textures[1] = (textures[1] // 3 + 170).astype(np.uint8)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        video.options = {"crf": "10", "g": "8"}
        audio = container.add_stream("aac", rate=RATE, layout="mono") if sound else None
        for t in range(frames):
            rgb = np.ascontiguousarray(textures[t >= 20][:, t:t + W])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts is not None:
                frame.pts = pts[t]
                frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        if audio is not None:
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE * frames // FPS) / RATE)).astype(np.float32)[None]
            a = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            a.sample_rate, a.pts = RATE, 0
            container.mux(audio.encode(a))
            container.mux(audio.encode(None))
        container.mux(video.encode(None))


def node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


@pytest.fixture(scope="module")
def depth(pack, tmp_path_factory):
    import folder_paths

    from testkit.tiny_depth import write_tiny_depth_anything

    folder = tmp_path_factory.mktemp("depthanything")
    write_tiny_depth_anything(folder / "tiny_depth.safetensors", seed=1)
    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    folder_paths.folder_names_and_paths["depthanything"] = ([str(folder), *paths], exts)
    folder_paths.filename_list_cache.clear()
    try:
        return node("StereoDisparityModelLoader").execute(
            model_name="depthanything/tiny_depth.safetensors", precision="fp32", download_if_missing=False).result[0]
    finally:
        folder_paths.folder_names_and_paths["depthanything"] = (paths, exts)
        folder_paths.filename_list_cache.clear()


@pytest.fixture()
def dirs(pack, tmp_path):
    with host_folders(tmp_path):
        write_clip(tmp_path / "in" / "clip.mp4")
        yield tmp_path


def convert(depth, **kw):
    args = dict(video="clip.mp4", disparity_model=depth, filename_prefix="video/clip", divergence=4.0,
                convergence=0.5, temporal_smoothing=0.5, scale_window=4, scene_cut_sensitivity=1.0, first_frame=0,
                frame_count=0, layout="parallel", format="stereo MP4", vr180_fov=90.0, crf=0, audio=True,
                resolution=56, batch_size=4)
    return node("StereoConvertVideoFile").execute(**{**args, **kw}).result[0]


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float64)


def audio_samples(path) -> int:
    with av.open(str(path)) as container:
        return sum(f.samples for f in container.decode(audio=0))


def psnr(a, b) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-12)))


def test_converts_a_file_to_a_tagged_stereo_video_with_its_sound(dirs, depth):
    path = convert(depth)
    assert path.endswith("_LRF_Full_SBS.mp4")
    assert read_spherical_metadata(path).stereo_mode == 2
    frames = decode(path)
    assert frames.shape == (FRAMES, H, 2 * W, 3)
    assert np.abs(frames[:, :, :W] - frames[:, :, W:]).mean() > 1  # the eyes differ
    assert abs(audio_samples(path) - FRAMES / FPS * RATE) <= 2048


def test_progress_is_logged_with_frames_per_second_and_time_left(dirs, depth, monkeypatch, caplog):
    import logging
    import sys

    monkeypatch.setattr(sys.modules[node("StereoConvertVideoFile").__module__], "LOG_EVERY", 10)
    with caplog.at_level(logging.INFO, logger="StereoDiffusion"):
        convert(depth, audio=False)
    lines = [r.getMessage() for r in caplog.records if "frames/s" in r.getMessage()]
    assert "Stereo Convert Video File clip.mp4: 10/30 frames" in lines[0] and "s left" in lines[0]
    assert len(lines) == 4  # at 10, 20 and 30 frames, and the closing line


def test_segments_joined_without_re_encoding_match_the_whole(dirs, depth):
    from stereo_pack.stereo_ops.video_join import join_segments

    whole = convert(depth)
    parts = [convert(depth, first_frame=0, frame_count=12), convert(depth, first_frame=12, frame_count=9),
             convert(depth, first_frame=21, frame_count=0)]
    assert "_f0000012_" in parts[1]
    joined = join_segments(parts, dirs / "out" / "joined.mp4")
    a, b = decode(whole), decode(joined)
    assert a.shape == b.shape
    assert min(psnr(x, y) for x, y in zip(a, b)) > 40  # crf 0: only the encoder's rounding differs
    assert read_spherical_metadata(joined).stereo_mode == 2
    assert abs(audio_samples(joined) - FRAMES / FPS * RATE) <= 3 * 2048


def test_an_interrupt_leaves_a_playable_tagged_file_of_the_frames_done(dirs, depth, monkeypatch):
    import sys

    import comfy.model_management as mm

    module = sys.modules[node("StereoConvertVideoFile").__module__]
    frame = module.Progress.frame

    def cancel_after_eight_pairs(self):
        frame(self)
        if self.done == 8:  # Cancel pressed: the next check raises
            monkeypatch.setattr(mm, "throw_exception_if_processing_interrupted", interrupted)

    def interrupted():
        raise mm.InterruptProcessingException()

    monkeypatch.setattr(module.Progress, "frame", cancel_after_eight_pairs)
    with pytest.raises(mm.InterruptProcessingException):
        convert(depth)
    (path,) = (dirs / "out" / "video").glob("*.mp4")
    assert decode(path).shape[0] == 8
    assert read_spherical_metadata(path).stereo_mode == 2


def test_vr180_writes_sv3d_and_the_player_name(dirs, depth):
    path = convert(depth, format="VR180 MP4", frame_count=6, audio=False, hole_fill="temporal")
    assert path.endswith("_180_LR.mp4")
    meta = read_spherical_metadata(path)
    assert meta.stereo_mode == 2 and meta.projection == "equirectangular"
    assert decode(path).shape[0] == 6


def test_a_first_frame_past_the_end_is_an_error_naming_it(dirs, depth):
    with pytest.raises(ValueError, match="^first_frame 30 is past the end of the video"):
        convert(depth, first_frame=FRAMES)


def test_an_unreadable_file_is_an_error_naming_the_input(dirs, depth):
    (dirs / "in" / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="^video: cannot read broken.mp4"):
        convert(depth, video="broken.mp4")


def test_a_variable_frame_rate_is_an_error_naming_the_input(dirs, depth):
    write_clip(dirs / "in" / "vfr.mp4", frames=12, sound=False, pts=[0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13])
    with pytest.raises(ValueError, match="^video: .*variable frame rate"):
        convert(depth, video="vfr.mp4")
