"""Stereo MP4 files: the Spherical Video V2 boxes (st3d, sv3d) read back from the written files, and
the frames decoded back with PyAV: both eyes intact in every layout, frame count, rate, audio."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import numpy as np
import pytest
import torch

from stereo_pack.stereo_ops import spherical_video as sv
from stereo_pack.stereo_ops.compose import LAYOUTS, side_by_side
from stereo_pack.stereo_ops.stereo_video import (
    Audio,
    StereoVideoWriter,
    compose_frames,
    file_suffix,
    frame_rate,
    mv_hevc_encoder,
    stereo_mode_of,
)

av = pytest.importorskip("av")

N, H, W = 4, 64, 96


def eyes(n=N, h=H, w=W):
    """Smooth, clearly different views (codecs keep smooth content): left has a horizontal ramp
    and a bright disc on the left, right a vertical ramp and a disc on the right; both move."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    lefts, rights = [], []
    for t in range(n):
        disc_l = ((x - 0.3 - 0.02 * t) ** 2 + (y - 0.5) ** 2 < 0.04).float()
        disc_r = ((x - 0.7 + 0.02 * t) ** 2 + (y - 0.4) ** 2 < 0.03).float()
        lefts.append(torch.stack([x, 0.5 * disc_l + 0.2, 1 - x], -1))
        rights.append(torch.stack([0.3 + 0.5 * disc_r, y, 1 - y], -1))
    return torch.stack(lefts), torch.stack(rights)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def decode(path):
    """(frames as RGB arrays, the video stream, the open container: close it)."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return frames, stream, container


def to_u8(t: torch.Tensor) -> np.ndarray:
    return t.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


# ---------------------------------------------------------------------------------------------
# boxes
# ---------------------------------------------------------------------------------------------

def test_st3d_is_a_full_box_with_one_stereo_mode_byte():
    assert sv.st3d("mono") == struct.pack(">I4sIB", 13, b"st3d", 0, 0)
    assert sv.st3d("top-bottom")[-1] == 1
    assert sv.st3d("left-right")[-1] == 2
    with pytest.raises(ValueError, match="stereo_mode"):
        sv.st3d("right-left")


def test_vr180_boxes_hold_svhd_then_proj_with_prhd_and_half_width_equi_bounds():
    data = sv.vr180_boxes("left-right")
    st3d_box, sv3d_box = list(sv.iter_boxes(data))
    assert (st3d_box.kind, sv3d_box.kind) == (b"st3d", b"sv3d")
    inner = list(sv.iter_boxes(data, sv3d_box.body, sv3d_box.end))
    assert [b.kind for b in inner] == [b"svhd", b"proj"]
    proj = inner[1]
    prhd, equi = list(sv.iter_boxes(data, proj.body, proj.end))
    assert (prhd.kind, equi.kind) == (b"prhd", b"equi")
    assert struct.unpack_from(">Iiii", data, prhd.body) == (0, 0, 0, 0)
    top, bottom, left, right = struct.unpack_from(">IIII", data, equi.body + 4)
    assert (top, bottom) == (0, 0)
    # 0.25 of the width cropped on each side of a 360-degree frame leaves the middle 180 degrees
    assert left == right == 0x40000000 and (left / 2**32) * 360 == 90.0


def test_equi_refuses_bounds_that_crop_everything():
    with pytest.raises(ValueError, match="equi bounds"):
        sv.equi(left=0x80000000, right=0x80000000)


def _plain_mp4(path, faststart=False, frames=3):
    left, right = eyes(frames)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 2 * W, H, "yuv420p"
        for rgb in to_u8(side_by_side(left, right)):
            c.mux(s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        c.mux(s.encode(None))


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-last", "moov-first"])
def test_injection_keeps_every_frame_decodable_and_replaces_earlier_tags(tmp_path, faststart):
    path = tmp_path / "clip.mp4"
    _plain_mp4(path, faststart)
    kinds = [b.kind for b in sv.top_level_boxes(path)]
    assert (kinds.index(b"moov") < kinds.index(b"mdat")) == faststart
    before, _, c = decode(path)
    c.close()
    assert sv.read_spherical_metadata(path).stereo_mode is None
    sv.inject_spherical_metadata(path, sv.st3d("top-bottom"))
    sv.inject_spherical_metadata(path, sv.vr180_boxes("left-right"))  # a second tag replaces the first
    meta = sv.read_spherical_metadata(path)
    assert (meta.sample_entry, meta.stereo_mode, meta.projection) == ("avc1", 2, "equirectangular")
    assert meta.bounds == (0, 0, 0x40000000, 0x40000000) and meta.pose == (0.0, 0.0, 0.0)
    moov = sv._read_moov(path)[1]
    entry = sv.video_sample_entry_path(moov)[-1]
    children = [b.kind for b in sv.sample_entry_children(moov, entry)]
    assert children.count(b"st3d") == 1 and children.count(b"sv3d") == 1
    after, _, c = decode(path)
    c.close()
    # chunk offsets moved with the data: the same bytes decode to the same frames
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(after, before))


def test_chunk_offsets_move_only_past_the_movie_box_in_stco_and_co64():
    stco = sv.full_box(b"stco", struct.pack(">III", 2, 10, 5000))
    co64 = sv.full_box(b"co64", struct.pack(">IQQ", 2, 20, 6_000_000_000))
    nest = lambda kind, inner: sv.box(kind, inner)  # noqa: E731
    moov = bytearray(nest(b"moov", nest(b"trak", nest(b"mdia", nest(b"minf", nest(b"stbl", stco + co64))))))
    sv._shift_chunk_offsets(moov, 100, past=1000)
    at = moov.find(b"stco") + 8
    assert struct.unpack_from(">III", moov, at) == (2, 10, 5100)
    at = moov.find(b"co64") + 8
    assert struct.unpack_from(">IQQ", moov, at) == (2, 20, 6_000_000_100)


def test_injection_refuses_a_file_without_video(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), mode="w", format="mp4") as c:
        s = c.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with pytest.raises(ValueError, match="no video track"):
        sv.inject_spherical_metadata(path, sv.st3d("left-right"))


# ---------------------------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------------------------

def split(frame: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    h, w = frame.shape[:2]
    if layout.startswith("top-bottom"):
        return frame[: h // 2], frame[h // 2:]
    first, second = frame[:, : w // 2], frame[:, w // 2:]
    return (second, first) if layout.startswith("cross-eyed") else (first, second)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_keeps_both_eyes_in_place_and_is_tagged(tmp_path, layout):
    left, right = eyes()
    path = tmp_path / f"clip{file_suffix(layout, 'flat')}.mp4"
    with StereoVideoWriter(path, fps=12, layout=layout, crf=10, preset="ultrafast") as writer:
        writer.write_pairs(left[:3], right[:3])  # two chunks
        writer.write_pairs(left[3:], right[3:])
    expected = {"parallel": 2, "parallel-half": 2, "top-bottom": 1, "top-bottom-half": 1}.get(layout)
    assert sv.read_spherical_metadata(path).stereo_mode == expected  # cross-eyed: no st3d
    frames, stream, c = decode(path)
    assert stream.average_rate == 12
    c.close()
    assert len(frames) == N
    # references: the inputs in the same layout (the half layouts squeeze both eyes)
    ref_left, ref_right = (to_u8(v) for v in (left, right))
    if layout.endswith("-half"):
        squeezed = to_u8(side_by_side(left, right, layout.replace("cross-eyed", "parallel")))
        ref_left, ref_right = zip(*(split(f, layout.replace("cross-eyed", "parallel")) for f in squeezed))
    for i, frame in enumerate(frames):
        got_left, got_right = split(frame, layout)
        assert psnr(got_left, ref_left[i]) > 30 and psnr(got_right, ref_right[i]) > 30
        assert psnr(got_left, ref_right[i]) < 20  # left is left


def test_frame_rate_audio_and_duration(tmp_path):
    left, right = eyes(6)
    rate = 8000
    t = np.arange(rate * 2) / rate  # 2 s of sound for 0.25 s of picture
    tone = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])[None] * 0.3
    audio = Audio.from_comfy({"waveform": torch.from_numpy(tone).float(), "sample_rate": rate})
    path = tmp_path / "with_sound.mp4"
    with StereoVideoWriter(path, fps=24000 / 1001, layout="parallel", audio=audio, preset="ultrafast") as writer:
        writer.write_pairs(left, right)
    with av.open(str(path)) as c:
        video, sound = c.streams.video[0], c.streams.audio[0]
        assert video.average_rate == Fraction(24000, 1001)
        assert sound.codec_context.name == "aac" and sound.channels == 2 and sound.sample_rate == rate
        samples = sum(f.samples for f in c.decode(sound))
    # the sound is cut at the picture's end (6 frames at 23.976 fps), give or take one AAC frame
    assert abs(samples - 6 * 1001 / 24000 * rate) <= 1024


def test_audio_with_more_than_two_channels_is_mixed_to_stereo():
    wave = torch.zeros(1, 6, 100)
    wave[0, 0] = 0.5
    audio = Audio.from_comfy({"waveform": wave, "sample_rate": 48000})
    assert audio.samples.shape == (2, 100) and audio.samples[0, 0] == pytest.approx(0.5 / 3)


def test_odd_sizes_are_padded_per_eye_so_the_halves_stay_aligned():
    left, right = eyes(1, 31, 45)
    for layout in ("parallel-half", "top-bottom"):
        frames = compose_frames(left, right, layout)
        assert frames.shape[1] % 2 == 0 and frames.shape[2] % 2 == 0
    full = compose_frames(left, right, "parallel")
    assert full.shape == (1, 32, 92, 3)
    assert torch.equal(full[:, :31, :45], left) and torch.equal(full[:, :31, 46:91], right)
    assert torch.equal(full[:, 31], full[:, 30]) and torch.equal(full[:, :, 45], full[:, :, 44])


def test_gray_and_rgba_eyes_become_rgb_frames():
    left, right = eyes(1)
    gray = compose_frames(left[..., :1], right[..., :1], "parallel")
    rgba = compose_frames(torch.cat([left, torch.ones_like(left[..., :1])], -1), right.new_ones(1, H, W, 4), "parallel")
    assert gray.shape == rgba.shape == (1, H, 2 * W, 3)
    assert torch.equal(gray[..., 1], gray[..., 0]) and torch.equal(rgba[:, :, :W], left)


def test_vr180_file_has_st3d_and_sv3d_and_square_eyes(tmp_path):
    left, right = eyes(2)
    path = tmp_path / f"clip{file_suffix('parallel', 'VR180')}.mp4"
    with StereoVideoWriter(path, fps=30, layout="parallel", projection="VR180", fov=90, eye_size=64,
                           preset="ultrafast") as writer:
        writer.write_pairs(left, right)
    assert path.name.endswith("_180_LR.mp4")
    meta = sv.read_spherical_metadata(path)
    assert meta.stereo_mode == 2 and meta.projection == "equirectangular"
    assert meta.bounds == (0, 0, 0x40000000, 0x40000000)
    frames, _, c = decode(path)
    c.close()
    assert frames[0].shape == (64, 128, 3)
    got_left, got_right = split(frames[0], "parallel")
    assert got_left[0, 0].max() < 20 and got_left[32, 32].max() > 40  # black corner, picture centre
    assert psnr(got_left, got_right) < psnr(got_left, got_left.copy())


def test_automatic_vr180_eyes_keep_the_source_density_up_to_what_decoders_play():
    small = compose_frames(*eyes(1, 16, 64), "parallel", "VR180", fov=90.0)
    assert small.shape[1:3] == (100, 200)  # pi * 64 / 2 = 100.5 -> 100 per eye
    wide = torch.zeros(1, 2, 2000, 3)
    assert compose_frames(wide, wide, "parallel", "VR180", fov=90.0).shape[1:3] == (2048, 4096)


def test_an_interrupted_run_leaves_a_playable_tagged_file_with_the_frames_written(tmp_path):
    left, right = eyes()
    path = tmp_path / "partial.mp4"
    with pytest.raises(KeyboardInterrupt):
        with StereoVideoWriter(path, fps=10, layout="top-bottom", preset="ultrafast") as writer:
            writer.write_pairs(left[:2], right[:2])
            raise KeyboardInterrupt
    assert sv.read_spherical_metadata(path).stereo_mode == 1
    frames, _, c = decode(path)
    c.close()
    assert len(frames) == 2


def test_a_run_stopped_before_the_first_frame_leaves_no_file(tmp_path):
    path = tmp_path / "nothing.mp4"
    with pytest.raises(RuntimeError):
        with StereoVideoWriter(path, fps=10):
            raise RuntimeError("stopped")
    assert not path.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crf": 60}, "crf"),
        ({"fps": 0}, "frame_rate"),
        ({"layout": "cross-eyed", "projection": "VR180"}, "cannot be VR180"),
        ({"projection": "VR180", "fov": 180}, "fov"),
        ({"layout": "diagonal"}, "layout"),
        ({"eye_size": 31}, "eye_size"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, kwargs, message):
    settings = {"fps": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        StereoVideoWriter(tmp_path / "x.mp4", **settings)


def test_unwritable_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot write"):
        StereoVideoWriter(tmp_path / "missing-folder" / "x.mp4", fps=10)


def test_layout_names_and_modes():
    assert stereo_mode_of("parallel-half") == "left-right" and stereo_mode_of("top-bottom") == "top-bottom"
    assert stereo_mode_of("cross-eyed") is None
    assert file_suffix("top-bottom-half", "VR180") == "_180_TB"
    assert frame_rate(30000 / 1001) == Fraction(30000, 1001) and frame_rate(25.0) == 25


def test_mv_hevc_detection_answers_without_raising():
    found = mv_hevc_encoder()
    assert found is None or "multiview" in found


def _ffmpeg_side_data(path) -> dict[str, bytes]:
    """What FFmpeg's own MP4 reader made of the boxes: the side data it attaches to decoded frames."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        side = getattr(frame, "side_data", None)
        if side is None:
            pytest.skip("this PyAV does not expose frame side data")
        return {sd.type.name: bytes(sd) for sd in side}


@pytest.mark.parametrize(("layout", "ffmpeg_type"), [("parallel", 1), ("top-bottom-half", 2)])
def test_ffmpeg_reads_our_st3d_as_the_layout(tmp_path, layout, ffmpeg_type):
    """An independent reader: FFmpeg's demuxer turns st3d into AVStereo3D, whose first field is the
    type (1 side by side, 2 top and bottom)."""
    left, right = eyes(1)
    path = tmp_path / "clip.mp4"
    with StereoVideoWriter(path, fps=10, layout=layout, preset="ultrafast") as writer:
        writer.write_pairs(left, right)
    side = _ffmpeg_side_data(path)
    assert struct.unpack_from("=i", side["STEREO3D"])[0] == ffmpeg_type
    assert "SPHERICAL" not in side


def test_ffmpeg_reads_our_sv3d_as_a_half_width_equirect(tmp_path):
    """AVSphericalMapping: projection (0 equirect, 2 equirect tile = with bounds), yaw, pitch, roll,
    then bound_left, bound_top, bound_right, bound_bottom."""
    left, right = eyes(1)
    path = tmp_path / "clip_180_LR.mp4"
    with StereoVideoWriter(path, fps=10, projection="VR180", eye_size=32, preset="ultrafast") as writer:
        writer.write_pairs(left, right)
    side = _ffmpeg_side_data(path)
    projection, yaw, pitch, roll, b_left, b_top, b_right, b_bottom = struct.unpack_from("=iiiiIIII", side["SPHERICAL"])
    assert projection in (0, 2) and (yaw, pitch, roll) == (0, 0, 0)
    assert (b_left, b_top, b_right, b_bottom) == (0x40000000, 0, 0x40000000, 0)
    assert struct.unpack_from("=i", side["STEREO3D"])[0] == 1
