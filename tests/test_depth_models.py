"""Depth networks: official key names, detection from keys and shapes, shapes, determinism, bad input."""

from __future__ import annotations

import hashlib

import pytest
import torch

pytest.importorskip("timm")

from stereo_pack.stereo_ops.depth import (  # noqa: E402
    UnsupportedCheckpoint,
    build_and_load,
    check_image_batch,
    detect_architecture,
    estimate_disparity,
    network_size,
    predict,
)
from stereo_pack.stereo_ops.depth.depth_anything import (  # noqa: E402
    DEPTH_ANYTHING_SIZES,
    DepthAnything,
    DepthAnythingConfig,
)
from stereo_pack.stereo_ops.depth.midas import MidasConfig, MidasDPT  # noqa: E402
from testkit.tiny_depth import (  # noqa: E402
    TINY_DEPTH_ANYTHING,
    TINY_MIDAS,
    save_state_dict,
    tiny_depth_anything,
    tiny_midas,
)

# sha256 of the sorted key names of the official Depth Anything V2 ViT-S model (239 keys).
OFFICIAL_DA_VITS_KEYS_SHA256 = "a8433e44f93f12fbc577674b54d0c82e72acaedc7bb10c99678b8775bd9825cb"


def _key_hash(sd) -> str:
    return hashlib.sha256("\n".join(sorted(sd)).encode()).hexdigest()


def _meta_state_dict(version: int, size: str):
    with torch.device("meta"):
        return DepthAnything(DepthAnythingConfig(version=version, **DEPTH_ANYTHING_SIZES[size])).state_dict()


def test_depth_anything_uses_the_official_key_names():
    sd = _meta_state_dict(2, "vits")
    assert len(sd) == 239
    assert _key_hash(sd) == OFFICIAL_DA_VITS_KEYS_SHA256


@pytest.mark.parametrize("size", ["vits", "vitb", "vitl"])
@pytest.mark.parametrize("version", [1, 2])
def test_official_sizes_are_detected_from_shapes(size, version):
    arch = detect_architecture(_meta_state_dict(version, size), depth_anything_version=version)
    expected = DepthAnythingConfig(version=version, **DEPTH_ANYTHING_SIZES[size])
    assert arch.config == expected
    assert arch.family == f"depth_anything_v{version}"
    assert arch.name.endswith({"vits": "ViT-S", "vitb": "ViT-B", "vitl": "ViT-L"}[size])
    assert arch.native_size == 518 and arch.multiple == 14


def test_tap_layers_follow_the_official_choice():
    cfg = lambda v, s: DepthAnythingConfig(version=v, **DEPTH_ANYTHING_SIZES[s])  # noqa: E731
    assert cfg(2, "vits").tap_layers == [2, 5, 8, 11]
    assert cfg(2, "vitl").tap_layers == [4, 11, 17, 23]
    assert cfg(1, "vitb").tap_layers == [8, 9, 10, 11]
    assert cfg(1, "vitl").tap_layers == [20, 21, 22, 23]


def test_tiny_configuration_is_detected_from_its_keys():
    arch = detect_architecture(tiny_depth_anything(2).state_dict())
    assert arch.config == DepthAnythingConfig(version=2, **TINY_DEPTH_ANYTHING)


@pytest.mark.parametrize("suffix,dtype", [(".pth", torch.float32), (".safetensors", torch.float16)])
def test_round_trip_through_a_file(tmp_path, suffix, dtype):
    from safetensors.torch import load_file

    model = tiny_depth_anything(2, seed=3)
    path = save_state_dict({k: v.to(dtype) for k, v in model.state_dict().items()}, tmp_path / f"m{suffix}")
    sd = load_file(str(path)) if suffix == ".safetensors" else torch.load(path, weights_only=True)
    loaded, arch = build_and_load(sd)
    # The reference: the same weights as stored (fp16-rounded for the fp16 file), computed in fp32.
    ref = DepthAnything(arch.config).eval()
    ref.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
    x = torch.randn(1, 3, 42, 70)
    torch.testing.assert_close(loaded(x), ref(x), rtol=0, atol=0)
    assert arch.config == DepthAnythingConfig(version=2, **TINY_DEPTH_ANYTHING)


def test_training_snapshot_with_optimizer_state_is_accepted():
    sd = tiny_midas("vit").state_dict()
    _, arch = build_and_load({"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3})
    assert arch.family == "midas_dpt_large"


def test_module_prefix_is_accepted():
    sd = {f"module.{k}": v for k, v in tiny_depth_anything(2).state_dict().items()}
    _, arch = build_and_load(sd)
    assert arch.family == "depth_anything_v2"


def test_v1_and_v2_read_different_blocks():
    sd = tiny_depth_anything(2, seed=1).state_dict()
    v1, _ = build_and_load(sd, depth_anything_version=1)
    v2, _ = build_and_load(sd, depth_anything_version=2)
    x = torch.randn(1, 3, 28, 42)
    assert v1.config.tap_layers == [0, 1, 2, 3] and v2.config.tap_layers == [0, 1, 2, 3]
    # With 4 blocks both choices coincide; with 8 they do not.
    sd8 = tiny_depth_anything(2, seed=1, depth=8).state_dict()
    a, _ = build_and_load(sd8, depth_anything_version=1)
    b, _ = build_and_load(sd8, depth_anything_version=2)
    assert a.config.tap_layers == [4, 5, 6, 7] and b.config.tap_layers == [1, 3, 5, 7]
    assert not torch.allclose(a(x), b(x))


def test_native_square_grid_uses_the_positional_embedding_unchanged():
    enc = tiny_depth_anything(2).pretrained
    tokens = torch.zeros(1, 37 * 37 + 1, enc.embed_dim)
    assert enc._pos_embed(tokens, 37, 37) is enc.pos_embed
    resized = enc._pos_embed(torch.zeros(1, 20 * 30 + 1, enc.embed_dim), 20, 30)
    assert resized.shape == (1, 601, enc.embed_dim)
    assert torch.equal(resized[:, 0], enc.pos_embed[:, 0])


@pytest.mark.parametrize(
    "h,w,target,multiple,method,expected",
    [
        (480, 640, 518, 14, "lower_bound", (518, 686)),
        (640, 480, 518, 14, "lower_bound", (686, 518)),
        (100, 300, 518, 14, "lower_bound", (518, 1554)),
        (518, 518, 518, 14, "lower_bound", (518, 518)),
        (3000, 4000, 384, 32, "minimal", (384, 512)),
        (100, 200, 384, 32, "minimal", (192, 384)),
    ],
)
def test_network_size_matches_the_official_resize_rule(h, w, target, multiple, method, expected):
    assert network_size(h, w, target, multiple, method) == expected


def test_estimate_non_square_batch_is_at_image_size_and_deterministic():
    model = tiny_depth_anything(2, seed=2)
    _, arch = build_and_load(model.state_dict())
    image = torch.rand(3, 37, 61, 3, generator=torch.Generator().manual_seed(0))
    a = estimate_disparity(model, arch, image, resolution=56, batch_size=2)
    again = estimate_disparity(model, arch, image, resolution=56, batch_size=2)
    b = estimate_disparity(model, arch, image, resolution=56, batch_size=3)
    assert a.shape == (3, 37, 61) and a.dtype == torch.float32
    assert torch.equal(a, again)
    # other batch sizes run other kernels: equal up to rounding, relative to the map's range (1)
    assert (a - b).abs().max() / b.abs().max() < 1e-4
    for d in a:
        assert d.min().item() == 0.0 and abs(d.max().item() - 1.0) < 1e-6
    # The output is continuous-valued, not quantised to 8 bits.
    assert a.unique().numel() > 256


def test_per_batch_normalisation_keeps_one_scale():
    model = tiny_depth_anything(2, seed=2)
    _, arch = build_and_load(model.state_dict())
    image = torch.rand(2, 28, 28, 3, generator=torch.Generator().manual_seed(1))
    raw = predict(model, arch, image, resolution=28)
    whole = estimate_disparity(model, arch, image, resolution=28, per_batch=True)
    torch.testing.assert_close(whole, (raw - raw.min()) / (raw.max() - raw.min()))


def test_resolution_changes_what_the_network_sees():
    class Seen(Exception):
        pass

    def record(module, args):
        raise Seen(tuple(args[0].shape[-2:]))  # the size is all we need: skip the forward

    model = tiny_depth_anything(2, seed=2)
    model.register_forward_pre_hook(record)
    _, arch = build_and_load(model.state_dict())
    image = torch.rand(1, 30, 60, 3)
    seen = []
    for resolution in (0, 28):
        with pytest.raises(Seen) as err:
            predict(model, arch, image, resolution=resolution)
        seen.append(err.value.args[0])
    assert seen == [(518, 1036), (28, 56)]


@pytest.mark.parametrize(
    "image,match",
    [
        (torch.rand(1, 32, 32, 1), "grayscale"),
        (torch.rand(1, 32, 32, 4), "RGBA"),
        (torch.rand(1, 1, 1, 3), "1x1 pixels"),
        (torch.rand(32, 32), "shape"),
    ],
)
def test_bad_images_get_a_clear_error(image, match):
    with pytest.raises(ValueError, match=match):
        check_image_batch(image)


def test_unknown_checkpoint_lists_what_is_supported():
    with pytest.raises(UnsupportedCheckpoint, match="Supported depth models:(.|\n)*Depth Anything V2(.|\n)*MiDaS"):
        build_and_load({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)})
    with pytest.raises(UnsupportedCheckpoint, match="no tensors"):
        build_and_load({})


def test_damaged_checkpoint_names_the_mismatch():
    sd = tiny_depth_anything(2).state_dict()
    del sd["depth_head.scratch.output_conv1.weight"]
    sd["pretrained.extra"] = torch.zeros(1)
    with pytest.raises(UnsupportedCheckpoint, match="1 missing .*output_conv1.weight.*1 unexpected"):
        build_and_load(sd)


# --- MiDaS -------------------------------------------------------------------------------

# sha256 of the sorted key names of the official MiDaS models (as the official code builds them).
OFFICIAL_MIDAS = {
    "vit": (368, "1c903a6780b2ab123ff2fb363291123ded4f634d6dff7d1c7809632d5803a930",
            dict(embed_dim=1024, depth=24, num_heads=16, grid=24, level_channels=(256, 512, 1024, 1024))),
    "hybrid": (368, "da86d1a3e2e51361f6db2fc5d967be20e9a93ab7cdc8d53b0707613e8ab9c49e",
               dict(embed_dim=768, depth=12, num_heads=12, grid=24, level_channels=(256, 512, 768, 768),
                    resnet_layers=(3, 4, 9), resnet_channels=(256, 512, 1024), stem_chs=64)),
    "beit": (463, "d5644bb04ffc8d08df4e48e26b2505d74eab88408a583744d6c8596f57394431",
             dict(embed_dim=1024, depth=24, num_heads=16, grid=32, level_channels=(256, 512, 1024, 1024))),
}
MIDAS_FAMILY = {"vit": "midas_dpt_large", "hybrid": "midas_dpt_hybrid", "beit": "midas_beit_large"}


@pytest.mark.parametrize("kind", ["vit", "hybrid", "beit"])
def test_midas_official_keys_and_detection(kind):
    count, digest, sizes = OFFICIAL_MIDAS[kind]
    cfg = MidasConfig(kind=kind, num_classes=1000, features=256, **sizes)
    with torch.device("meta"):
        sd = MidasDPT(cfg).state_dict()
    assert len(sd) == count and _key_hash(sd) == digest
    arch = detect_architecture(sd)
    assert arch.config == cfg and arch.family == MIDAS_FAMILY[kind]
    assert arch.native_size == {"vit": 384, "hybrid": 384, "beit": 512}[kind]
    assert arch.multiple == 32 and arch.mean == (0.5, 0.5, 0.5) and arch.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("kind", ["vit", "hybrid", "beit"])
def test_tiny_midas_round_trip_non_square_and_deterministic(tmp_path, kind):
    model = tiny_midas(kind, seed=4)
    path = save_state_dict(model.state_dict(), tmp_path / f"{kind}.pt")
    loaded, arch = build_and_load(torch.load(path, weights_only=True))
    assert arch.config == MidasConfig(**TINY_MIDAS[kind])
    x = torch.randn(1, 3, 64, 96)  # native 64: a non-square grid exercises the resizing paths
    with torch.inference_mode():
        out = loaded(x)
        torch.testing.assert_close(out, model(x), rtol=0, atol=0)
        assert torch.equal(out, loaded(x))
    assert out.shape == (1, 64, 96) and out.abs().max() > 0
    image = torch.rand(2, 50, 70, 3, generator=torch.Generator().manual_seed(0))
    d = estimate_disparity(loaded, arch, image)
    assert d.shape == (2, 50, 70) and d.amin() == 0.0


def test_beit_derived_buffers_from_older_timm_are_accepted():
    sd = tiny_midas("beit").state_dict()
    sd["pretrained.model.blocks.0.attn.relative_position_index"] = torch.zeros(17, 17, dtype=torch.long)
    _, arch = build_and_load(sd)
    assert arch.family == "midas_beit_large"


def test_checkpoint_of_another_architecture_is_rejected():
    da = tiny_depth_anything(2).state_dict()
    midas = tiny_midas("vit").state_dict()
    mixed = {**midas, "pretrained.model.blocks.0.attn.relative_position_bias_table": torch.zeros(52, 1)}
    with pytest.raises(UnsupportedCheckpoint, match="does not match"):
        build_and_load(mixed)
    with pytest.raises(UnsupportedCheckpoint, match="unrecognised"):
        build_and_load({k: v for k, v in da.items() if not k.startswith("depth_head")})


# --- Depth Anything 3 -----------------------------------------------------------------------

from stereo_pack.stereo_ops.depth.da3 import DA3Config, DepthAnything3, sky_to_far  # noqa: E402
from testkit.tiny_depth import TINY_DA3, da3_file_state_dict, tiny_da3, write_tiny_da3  # noqa: E402

# sha256 of the sorted key names the official DA3 files hold (after their `model.` prefix), less the
# camera/ray parts single-view depth does not run: DA3-SMALL 269 of 443 keys, DA3MONO-LARGE all 406.
OFFICIAL_DA3_SMALL_KEYS_SHA256 = "ed9a80f0506487e5b5f4df5dab63a72c797a0ba2dc2e3345bb4307d3e977aae7"
OFFICIAL_DA3_MONO_LARGE_KEYS_SHA256 = "9b01d302c9b5e5436a2ea003bbb635fbb44afcd59bca774d45dcc751d82f9049"
DA3_OFFICIAL = {
    "small": (DA3Config(embed_dim=384, depth=12, num_heads=6, features=64, out_channels=(48, 96, 192, 384),
                        any_view=True, alt_start=4, output_dim=2, sky_head=False), 269,
              OFFICIAL_DA3_SMALL_KEYS_SHA256),
    "mono_large": (DA3Config(embed_dim=1024, depth=24, num_heads=16, features=256, out_channels=(256, 512, 1024, 1024),
                             any_view=False, output_dim=1, sky_head=True), 406,
                   OFFICIAL_DA3_MONO_LARGE_KEYS_SHA256),
}


@pytest.mark.parametrize("name", list(DA3_OFFICIAL))
def test_da3_uses_the_official_key_names_and_is_detected(name):
    cfg, n_keys, digest = DA3_OFFICIAL[name]
    with torch.device("meta"):
        sd = DepthAnything3(cfg).state_dict()
    assert len(sd) == n_keys and _key_hash(sd) == digest
    arch = detect_architecture(sd)
    assert arch.config == cfg
    assert arch.output == "depth" and arch.native_size == 504 and arch.resize_method == "upper_bound"
    assert cfg.taps == ((5, 7, 9, 11) if cfg.any_view else (4, 11, 17, 23))


def test_da3_metric_is_a_hint_because_its_weights_look_like_mono():
    sd = tiny_da3("mono").state_dict()
    assert detect_architecture(sd).family == "da3_mono"
    metric = detect_architecture(sd, da3_metric=True)
    assert metric.family == "da3_metric" and metric.output == "metric_depth" and metric.metric_focal_divisor == 300
    # The hint means nothing for the any-view models, which are not metric.
    assert detect_architecture(tiny_da3("any_view").state_dict(), da3_metric=True).family == "da3_any_view"


@pytest.mark.parametrize("kind", list(TINY_DA3))
@pytest.mark.parametrize(
    "suffix,dtype", [(".safetensors", torch.float32), (".safetensors", torch.float16), (".pth", torch.float32)]
)
def test_da3_published_layout_round_trip(tmp_path, kind, suffix, dtype):
    model = tiny_da3(kind)
    sd = {k: v.to(dtype) for k, v in da3_file_state_dict(model).items()}
    path = save_state_dict(sd, tmp_path / f"model{suffix}")
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        loaded_sd = load_file(str(path))
    else:
        loaded_sd = torch.load(path, weights_only=True)
    loaded, arch = build_and_load(loaded_sd)
    assert arch.family == ("da3_any_view" if kind == "any_view" else "da3_mono")
    x = torch.randn(1, 3, 14 * 3, 14 * 5)
    with torch.inference_mode():
        want = model.half().float()(x) if dtype == torch.float16 else model(x)
        got = loaded(x)
    assert got.shape == (1, 42, 70) and (got > 0).all()
    torch.testing.assert_close(got, want)


def test_da3_rejects_extra_keys_outside_the_unused_parts():
    sd = da3_file_state_dict(tiny_da3("any_view"))
    sd["model.head.scratch.something_new.weight"] = torch.zeros(1)
    with pytest.raises(UnsupportedCheckpoint, match="unexpected"):
        build_and_load(sd)
    mono = da3_file_state_dict(tiny_da3("mono"))
    mono["model.cam_dec.fc_t.weight"] = torch.zeros(3, 4)  # camera parts are foreign to a mono file
    with pytest.raises(UnsupportedCheckpoint, match="unexpected"):
        build_and_load(mono)


def test_da3_sky_pixels_get_the_99th_percentile_of_the_rest():
    depth = torch.arange(1.0, 201.0).view(1, 10, 20)
    sky = torch.zeros(1, 10, 20)
    sky[0, :3] = 1.0  # the top 60 pixels are sky
    out = sky_to_far(depth, sky)
    expected = torch.quantile(depth[0, 3:].flatten(), 0.99)
    assert (out[0, :3] == expected).all()
    torch.testing.assert_close(out[0, 3:], depth[0, 3:])
    few = torch.zeros(1, 10, 20)
    few[0, 0, :5] = 1.0  # 10 sky pixels or fewer: left alone, as the official code does
    torch.testing.assert_close(sky_to_far(depth, few), depth)


def test_da3_depth_becomes_disparity_by_the_reciprocal():
    model, arch = build_and_load(tiny_da3("mono").state_dict())
    image = torch.rand(2, 30, 44, 3)
    depth = predict(model, arch, image, resolution=56)
    d = estimate_disparity(model, arch, image, resolution=56)
    inv = 1.0 / depth
    lo = inv.flatten(1).amin(1).view(-1, 1, 1)
    hi = inv.flatten(1).amax(1).view(-1, 1, 1)
    torch.testing.assert_close(d, (inv - lo) / (hi - lo))
    # Nearest = smallest depth = 1.
    i = int(depth[0].argmin())
    assert d[0].flatten()[i] == 1.0


@pytest.mark.parametrize("h,w,expected", [(1080, 1920, (280, 504)), (504, 376, (504, 378)), (100, 100, (504, 504)),
                                           (30, 700, (28, 504))])
def test_da3_network_size_follows_the_official_upper_bound_rule(h, w, expected):
    assert network_size(h, w, 504, 14, "upper_bound") == expected


def test_area_resize_averages_exactly():
    from stereo_pack.stereo_ops.depth.preprocess import area_resize

    x = torch.rand(1, 3, 9, 12)
    torch.testing.assert_close(area_resize(x, (3, 4)), torch.nn.functional.avg_pool2d(x, 3))
    y = area_resize(x, (4, 5))  # fractional spans keep the mean
    torch.testing.assert_close(y.mean(dim=(-1, -2)), x.mean(dim=(-1, -2)))


def test_screen_convergence_puts_that_depth_at_zero_parallax():
    from stereo_pack.stereo_ops.depth import metric_scale, prediction_to_disparity, screen_convergence

    arch = detect_architecture(tiny_da3("mono").state_dict(), da3_metric=True)
    width, fov = 504, 90.0  # focal = 252 px, so metres = output * 252 / 300
    scale = metric_scale(arch, width, fov)
    assert scale == pytest.approx(252 / 300)
    metres = torch.tensor([[[1.0, 2.0, 5.0, 10.0]]])
    raw = metres / scale
    c = screen_convergence(raw, arch, 2.0, width, fov)
    d = prediction_to_disparity(raw, arch)
    # The pixel 2 m away has disparity c: the sampler's shift s * (D - c) leaves it in place.
    torch.testing.assert_close(c, d[:, 0, 1])
    torch.testing.assert_close(c, torch.tensor([4 / 9]))
    assert screen_convergence(raw, arch, 0.5, width, fov).item() == 1.0  # nearer than everything
    assert screen_convergence(raw, arch, 50.0, width, fov).item() == 0.0
    mono = detect_architecture(tiny_da3("mono").state_dict())
    with pytest.raises(ValueError, match="metric"):
        screen_convergence(raw, mono, 2.0, width, fov)


def test_screen_convergence_per_batch_uses_the_batch_extremes():
    from stereo_pack.stereo_ops.depth import screen_convergence

    arch = detect_architecture(tiny_da3("mono").state_dict(), da3_metric=True)
    raw = torch.tensor([[[1.0, 2.0]], [[2.0, 4.0]]]) * 300.0 / 252.0
    each = screen_convergence(raw, arch, 2.0, 504, 90.0)
    whole = screen_convergence(raw, arch, 2.0, 504, 90.0, per_batch=True)
    torch.testing.assert_close(each, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(whole, torch.tensor([1 / 3, 1 / 3]))


@pytest.mark.parametrize("kind", list(TINY_DA3))
def test_da3_in_bfloat16_is_close_to_float32(kind):
    model, arch = build_and_load(tiny_da3(kind).state_dict())
    image = torch.rand(1, 40, 60, 3, generator=torch.Generator().manual_seed(5))
    full = estimate_disparity(model, arch, image, resolution=56)
    half = estimate_disparity(model.to(torch.bfloat16), arch, image, resolution=56, dtype=torch.bfloat16)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - full).abs().mean() < 0.05
