"""Video Depth Anything: official key names, detection, strict loading, the windowed procedure
(key frames, alignment, seams, padding), chunk invariance, streaming, dtypes."""

from __future__ import annotations

import hashlib

import pytest
import torch

pytest.importorskip("timm")

from stereo_pack.stereo_ops.depth import (  # noqa: E402
    UnsupportedCheckpoint,
    build_and_load,
    detect_architecture,
    predict,
)
from stereo_pack.stereo_ops.depth.common import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from stereo_pack.stereo_ops.depth.video_depth_anything import (  # noqa: E402
    VIDEO_DEPTH_ANYTHING_SIZES,
    VideoDepthAnything,
    VideoDepthAnythingConfig,
)
from stereo_pack.stereo_ops.depth.video_inference import (  # noqa: E402
    StreamingVideoDepth,
    WindowedVideoDepth,
    fit_scale_and_shift,
    video_depth,
    video_network_size,
)
from testkit.tiny_depth import tiny_video_depth_anything  # noqa: E402

# sha256 of the sorted key names of the official video_depth_anything_vits.pth model (351 keys),
# taken from the official VideoDepthAnything class.
OFFICIAL_VDA_VITS_KEYS_SHA256 = "7af3b640d398aa97c54e47eec8d2d3e6af9e53b16636cfbda0d50b60309b2f28"
SIZE = 28  # network input side for the tiny model: 2 x 2 patches


def _meta_state_dict(size: str):
    with torch.device("meta"):
        return VideoDepthAnything(VideoDepthAnythingConfig(**VIDEO_DEPTH_ANYTHING_SIZES[size])).state_dict()


def _clip(frames: int, h: int = 30, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(frames, h, w, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    return tiny_video_depth_anything()


def test_official_key_names():
    sd = _meta_state_dict("vits")
    assert len(sd) == 351
    assert hashlib.sha256("\n".join(sorted(sd)).encode()).hexdigest() == OFFICIAL_VDA_VITS_KEYS_SHA256


@pytest.mark.parametrize("size", ["vits", "vitb", "vitl"])
@pytest.mark.parametrize("metric", [False, True])
def test_official_sizes_and_variants_are_detected(size, metric):
    arch = detect_architecture(_meta_state_dict(size), video_metric=metric)
    assert arch.config == VideoDepthAnythingConfig(**VIDEO_DEPTH_ANYTHING_SIZES[size])
    assert arch.temporal and arch.native_size == 518 and arch.multiple == 14
    assert arch.family == ("video_depth_anything_metric" if metric else "video_depth_anything")
    assert arch.output == ("metric_depth" if metric else "disparity")
    assert {"vits": "ViT-S", "vitb": "ViT-B", "vitl": "ViT-L"}[size] in arch.name


def test_strict_loading(tiny):
    sd = tiny.state_dict()
    model, arch = build_and_load(sd)
    assert arch.config == tiny.config and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    missing = {k: v for k, v in sd.items() if "motion_modules.3.temporal_transformer.proj_out" not in k}
    with pytest.raises(UnsupportedCheckpoint, match="missing"):
        build_and_load(missing)
    with pytest.raises(UnsupportedCheckpoint, match="unexpected"):
        build_and_load({**sd, "head.motion_modules.9.extra": torch.zeros(1)})
    # Depth Anything V2's layout renamed to 'head.' without the motion modules is not this model.
    image_only = {k: v for k, v in sd.items() if not k.startswith("head.motion_modules.")}
    with pytest.raises(UnsupportedCheckpoint, match="no temporal motion modules"):
        build_and_load(image_only)


def test_motion_modules_mix_frames_and_the_encoder_does_not(tiny):
    x = torch.randn(1, 4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        base = tiny(x)
        changed = x.clone()
        changed[0, 3] = torch.randn(3, SIZE, SIZE)
        out = tiny(changed)
        feats_a, feats_b = tiny.encode(x[0]), tiny.encode(changed[0])
    assert base.shape == (1, 4, SIZE, SIZE) and (base >= 0).all()
    assert all(torch.equal(a[:3], b[:3]) for a, b in zip(feats_a, feats_b))
    assert (out[0, 0] - base[0, 0]).abs().max() > 1e-4  # frame 3 changed frame 0's depth


def test_chunked_clip_equals_the_clip_in_one_piece(tiny):
    frames = 45  # three windows, the last one padded
    clip = _clip(frames)
    whole = video_depth(tiny, clip, input_size=SIZE)
    assert whole.shape == (frames, 30, 40) and whole.dtype == torch.float32
    for chunk in (1, 13, 32):
        assert torch.equal(video_depth(tiny, clip, input_size=SIZE, chunk=chunk), whole), chunk


def test_frames_come_back_as_soon_as_no_window_can_change_them(tiny):
    runner = WindowedVideoDepth(tiny, input_size=SIZE)
    counts = [runner.push(f).shape[0] for f in _clip(60).split(10)]
    # window 0 needs 32 frames and settles 24; each later window needs 22 more and settles 22
    assert counts == [0, 0, 0, 24, 0, 22]
    assert runner.finish().shape[0] == 14
    with pytest.raises(RuntimeError, match="finished"):
        runner.push(_clip(1))


class _AffineStub(torch.nn.Module):
    """A stand-in network whose depth for a frame is known: each window predicts
    scale_k * truth + shift_k, with truth read from the frame (its red channel), and a different
    (scale, shift) per window. It records which frames each window saw."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.windows: list[torch.Tensor] = []

    def encode(self, x, micro_batch=0):
        return [x]

    def decode(self, features, size, frames, context=None, micro_batch=4):
        k = len(self.windows)
        x = features[0]
        self.windows.append(x[:, 1, 0, 0])  # the frame index, written into the green channel
        truth = x[:, 0] + 3.0
        return (0.5 + 0.37 * k) * truth + (0.2 * k - 0.1), []


def _indexed_clip(frames: int, h: int = 14, w: int = 14) -> torch.Tensor:
    """Frames whose red channel is a smooth varying 'truth' and whose green channel holds the index."""
    t = torch.arange(frames, dtype=torch.float32)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    red = 0.2 + 0.6 * (0.5 + 0.5 * torch.sin(6 * xx[None] + 3 * yy[None] + 0.3 * t[:, None, None]))
    green = (t / 255.0)[:, None, None].expand(frames, h, w)
    return torch.stack((red, green, torch.zeros_like(red)), dim=-1)


def _slot_frames(window: torch.Tensor) -> list[int]:
    # undo the normalisation of the green channel: index / 255 = value * std + mean
    return [round(float(v * IMAGENET_STD[1] + IMAGENET_MEAN[1]) * 255) for v in window]


@pytest.mark.parametrize("frames", [1, 21, 22, 32, 33, 45, 54, 55, 100])
def test_windows_key_frames_alignment_and_padding(frames):
    stub = _AffineStub()
    clip = _indexed_clip(frames)
    got = video_depth(stub, clip, input_size=14, chunk=7)
    assert got.shape == (frames, 14, 14)
    # Every window after the first is fitted back onto the first one's scale and shift exactly.
    truth = (clip[..., 0] - IMAGENET_MEAN[0]) / IMAGENET_STD[0] + 3.0
    expected = 0.5 * truth - 0.1
    assert (got - expected).abs().max() < 1e-4
    # The windows the official procedure runs: starts 0, 22, 44, ... below the clip's length, with
    # the clip's first frame and the previous window's slot 12 as key frames, padding = last frame.
    starts = list(range(0, frames, 22))
    assert len(stub.windows) == len(starts)
    last = frames - 1
    for k, start in enumerate(starts):
        slots = [min(start + i, last) for i in range(32)]
        if k:
            slots[0], slots[1] = 0, min(starts[k - 1] + 12, last)
        assert _slot_frames(stub.windows[k]) == slots, k
    # A metric model is not fitted: the windows keep their own scales (a negative control).
    metric = video_depth(_AffineStub(), clip, input_size=14, metric=True)
    assert len(starts) == 1 or (metric - expected).abs().max() > 0.1


def test_scale_and_shift_fit():
    p = torch.rand(2, 5, 7, generator=torch.Generator().manual_seed(2))
    s, t = fit_scale_and_shift(p, 2.5 * p - 0.75)
    assert abs(s - 2.5) < 1e-6 and abs(t + 0.75) < 1e-6  # the target is rounded to float32
    assert fit_scale_and_shift(torch.ones(3, 3), torch.rand(3, 3)) == (1.0, 0.0)


def test_streaming_chunks_and_first_frame(tiny):
    clip = _clip(16, seed=4)  # past frame 10 the cache starts dropping entries
    whole = video_depth(tiny, clip, input_size=SIZE, streaming=True)
    assert whole.shape == (16, 30, 40)
    assert torch.equal(video_depth(tiny, clip, input_size=SIZE, streaming=True, chunk=3), whole)
    # The first frame sees no history: the network on that one frame, brought to the frame size.
    runner = StreamingVideoDepth(tiny, input_size=SIZE)
    first = runner.push(clip[:1])
    with torch.inference_mode():
        alone = tiny(runner.prepare(clip[:1])[None])[0]
    alone = torch.nn.functional.interpolate(alone[:, None], size=(30, 40), mode="bilinear", align_corners=True)[:, 0]
    assert torch.allclose(first, alone, atol=1e-6)
    # Later frames depend on the history: the same frame after another history differs.
    other = torch.cat((clip[:1], _clip(10, seed=9), clip[1:2]))
    a = video_depth(tiny, clip[:2], input_size=SIZE, streaming=True)[1]
    b = video_depth(tiny, other, input_size=SIZE, streaming=True)[-1]
    assert (a - b).abs().max() > 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_follows_fp32(tiny, dtype):
    # 5 x 5 patches: on smaller grids the motion modules' group norms see one or four values and
    # amplify any rounding.
    clip = _clip(34, seed=5)
    ref = video_depth(tiny, clip, input_size=70)
    model = tiny_video_depth_anything().to(dtype)
    got = video_depth(model, clip, input_size=70)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert (got - ref).abs().mean() / ref.abs().mean() < 0.05


def test_predict_takes_the_batch_as_a_clip(tiny):
    _, arch = build_and_load(tiny.state_dict())
    clip = _clip(35, seed=6)
    seen = []
    got = predict(tiny, arch, clip, SIZE, batch_size=3, on_batch=seen.append)
    assert torch.equal(got, video_depth(tiny, clip, input_size=SIZE, micro_batch=3))
    assert sum(seen) == 35
    streamed = predict(tiny, arch, clip[:6], SIZE, streaming=True)
    assert torch.equal(streamed, video_depth(tiny, clip[:6], input_size=SIZE, streaming=True))


def test_bad_frames_are_refused(tiny):
    runner = WindowedVideoDepth(tiny, input_size=SIZE)
    runner.push(_clip(3))
    with pytest.raises(ValueError, match="frames: every frame"):
        runner.push(_clip(2, h=31))
    with pytest.raises(ValueError, match="RGB"):
        WindowedVideoDepth(tiny).push(torch.rand(2, 20, 20, 4))
    with pytest.raises(ValueError, match="batch_size"):
        WindowedVideoDepth(tiny, micro_batch=0)


@pytest.mark.parametrize("hw", [(480, 640), (1080, 1920), (800, 1920), (1920, 800), (518, 518), (300, 1400)])
def test_network_size_follows_the_official_rule(hw):
    h, w = hw
    size = 518
    ratio = max(h, w) / min(h, w)
    if ratio > 1.78:  # the official memory rule for frames wider than 16:9
        size = round(int(size * 1.777 / ratio) / 14) * 14
    scale = max(size / h, size / w)

    def side(x):
        y = round(x * scale / 14) * 14
        return y if y >= size else -(-int(x * scale) // 14) * 14

    assert video_network_size(h, w) == (side(h), side(w))


def test_consistency_benchmark_scores_exact_truth_as_perfect():
    from bench.bench_video_depth import consistency_scores, moving_scene

    frames, truth = moving_scene(5, 28, 48)
    assert frames.shape == (5, 28, 48, 3) and truth.shape == (5, 28, 48)
    assert truth.min() == 0.05 and truth.max() > 0.8  # background and near planes in view
    assert (truth[1:] != truth[:-1]).any()  # the scene moves
    # Any clip-wide scale and shift of the truth is perfect; a per-frame one flickers.
    err, flicker = consistency_scores(3.0 * truth + 2.0, truth)
    assert err < 1e-9 and flicker < 1e-9
    wobble = truth * (1 + 0.1 * torch.arange(5, dtype=truth.dtype).remainder(2)).view(-1, 1, 1)
    assert consistency_scores(wobble, truth)[1] > 0.01
