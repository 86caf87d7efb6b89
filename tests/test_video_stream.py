"""The streamed conversion of a long video: segments equal the whole, memory stays bounded."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")

from stereo_pack.stereo_ops.depth import detect_architecture  # noqa: E402
from stereo_pack.stereo_ops.scene_cuts import detect_scene_cuts  # noqa: E402
from stereo_pack.stereo_ops.stereo_geometry import StereoGeometry  # noqa: E402
from stereo_pack.stereo_ops.video_stream import (  # noqa: E402
    StereoStream, StreamSettings, convert_frames, depth_stream, segment_read_start,
)
from testkit.tiny_depth import tiny_depth_anything  # noqa: E402

H, W = 36, 64
GEOMETRY = StereoGeometry(4.0, 0.5, False)


def panning_clip(frames: int = 48, cut: int = 30) -> torch.Tensor:
    """A textured picture panning 1 pixel a frame, with a cut to another texture at `cut`."""
    g = torch.Generator().manual_seed(0)
    shots = [torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W + frames, generator=g), 3, 1, 1)[0]
             for _ in range(2)]
    shots[1] = shots[1] * 0.3 + 0.7  # another scene: brighter, other histograms
    out = []
    for t in range(frames):
        src = shots[0] if t < cut else shots[1]
        out.append(src[:, :, t:t + W].permute(1, 2, 0))
    return torch.stack(out).clamp(0, 1)


@pytest.fixture(scope="module")
def model():
    net = tiny_depth_anything(2, seed=1)
    return net, detect_architecture(net.state_dict())


def convert(clip, model, settings, first=0, count=0):
    net, arch = model
    frames = lambda start: iter(clip[start:])  # noqa: E731
    depth_for = lambda start: depth_stream(net, arch, start, settings.batch_size, 56)  # noqa: E731
    return list(convert_frames(frames, depth_for, settings, GEOMETRY, first, count))


def test_segments_equal_the_whole_clip_frame_for_frame(model):
    clip = panning_clip()
    assert detect_scene_cuts(clip) == [30]  # a cut inside the second segment's look-back
    settings = StreamSettings(smoothing=0.5, scale_radius=6, batch_size=4)
    whole = convert(clip, model, settings)
    assert [t for t, _, _ in whole] == list(range(clip.shape[0]))
    parts = convert(clip, model, settings, 0, 13) + convert(clip, model, settings, 13, 22) + \
        convert(clip, model, settings, 35, 0)
    assert [t for t, _, _ in parts] == list(range(clip.shape[0]))
    for (t, left, right), (_, left2, right2) in zip(whole, parts):
        assert torch.equal(left, left2) and torch.equal(right, right2), f"frame {t} differs"
    # The pairs really are stereo: the right eye moved.
    assert any(not torch.equal(left, right) for _, left, right in whole)


def test_a_segment_reads_only_its_look_back(model):
    settings = StreamSettings(smoothing=0.5, scale_radius=6, batch_size=4)
    start = segment_read_start(35, settings, settings.batch_size)
    assert start % 4 == 0 and 35 - settings.look_back - 4 < start <= 35 - settings.look_back


def test_memory_is_bounded_by_the_look_ahead_not_the_length(model):
    net, arch = model
    settings = StreamSettings(smoothing=0.5, scale_radius=4, batch_size=2)
    clip = panning_clip(60, cut=100)
    stream = StereoStream(depth_stream(net, arch, 0, 2, 56), settings, GEOMETRY)
    most_images = most_frames = 0
    for frame in clip:
        stream.push(frame)
        most_frames = max(most_frames, len(stream.frames))
        most_images = max(most_images, sum(f.image is not None for f in stream.frames.values()))
    assert len(stream.finish()) > 0
    assert most_images <= settings.look_ahead + settings.batch_size + 1
    assert most_frames <= settings.look_ahead + settings.look_back + settings.batch_size + 2


def test_the_stream_finds_the_cuts_the_whole_clip_detector_finds(model):
    net, arch = model
    clip = panning_clip(40, cut=22)
    stream = StereoStream(depth_stream(net, arch, 0, 4, 56), StreamSettings(scale_radius=2), GEOMETRY)
    cuts = []
    for frame in clip:
        stream.push(frame)
        cuts += [t for t, f in stream.frames.items() if f.cut and t not in cuts and t < stream.n_cut]
    stream.finish()
    assert cuts == detect_scene_cuts(clip) == [22]


def test_a_frame_size_change_is_an_error_naming_the_video(model):
    net, arch = model
    stream = StereoStream(depth_stream(net, arch, 0, 4, 56), StreamSettings(), GEOMETRY)
    stream.push(torch.rand(H, W, 3))
    with pytest.raises(ValueError, match="video: frame 1 is 32x32"):
        stream.push(torch.rand(32, 32, 3))


def test_video_depth_anything_streams_through_its_windows(model):
    from testkit.tiny_depth import tiny_video_depth_anything

    net = tiny_video_depth_anything(seed=2)
    arch = detect_architecture(net.state_dict())
    assert arch.temporal
    clip = panning_clip(40, cut=100)
    settings = StreamSettings(smoothing=0.5, scale_radius=4, batch_size=4)
    frames = lambda start: iter(clip[start:])  # noqa: E731
    depth_for = lambda start: depth_stream(net, arch, start, 4, 28)  # noqa: E731
    whole = list(convert_frames(frames, depth_for, settings, GEOMETRY))
    assert [t for t, _, _ in whole] == list(range(40))
    part = list(convert_frames(frames, depth_for, settings, GEOMETRY, first=30))
    assert [t for t, _, _ in part] == list(range(30, 40))
    # Its windows start where the segment starts reading: close to the whole clip, not bit-equal.
    diff = max(float((a[2] - b[2]).abs().mean()) for a, b in zip(whole[30:], part))
    assert diff < 0.05  # measured 0.018 (random weights); the eyes themselves differ by more
    assert max(float((a[1] - a[2]).abs().mean()) for a in whole[30:]) > diff
