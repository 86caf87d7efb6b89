"""One-pass text to stereo in the real host: the stereo samplers estimate the disparity from their own
prediction at the shift step (and, with refresh, at every SPSMD step), with a tiny depth network and a
TAESD decoder."""

from __future__ import annotations

import pytest
import torch

from testkit.tiny_models import tiny_conditioning

pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("pack")

STEPS = 10  # shift after 2 steps, SPSMD at 4, 6 and 8


def _node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


@pytest.fixture(scope="module")
def depth_model(pack, tmp_path_factory):
    import folder_paths

    from testkit.tiny_depth import write_tiny_depth_anything

    folder = tmp_path_factory.mktemp("depthanything")
    write_tiny_depth_anything(folder / "tiny_depth.safetensors")
    paths, exts = folder_paths.folder_names_and_paths["depthanything"]
    folder_paths.folder_names_and_paths["depthanything"] = ([str(folder), *paths], exts)
    folder_paths.filename_list_cache.clear()
    try:
        return _node("StereoDisparityModelLoader").execute(
            model_name="depthanything/tiny_depth.safetensors", precision="fp32", download_if_missing=False).result[0]
    finally:
        folder_paths.folder_names_and_paths["depthanything"] = (paths, exts)
        folder_paths.filename_list_cache.clear()


@pytest.fixture(scope="module")
def vae(host):
    import comfy.sd
    from comfy.taesd.taesd import TAESD

    from testkit.random_weights import fill_random

    decoder = TAESD(latent_channels=4)
    fill_random(decoder, seed=3)
    return comfy.sd.VAE(sd=decoder.state_dict())


class Predictions:
    """Stands in for the latent preview: records the sampler's prediction (x0) of every step."""

    def __init__(self, monkeypatch):
        import latent_preview

        self.x0 = {}

        def prepare_callback(model, steps, x0_output_dict=None):
            def callback(step, x0, x, total_steps):
                self.x0[step] = x0.clone()

            return callback

        monkeypatch.setattr(latent_preview, "prepare_callback", prepare_callback)


def _one_pass(model, depth_model, vae, latent=None, **kw):
    latent = {"samples": torch.zeros(2, 4, 8, 12)} if latent is None else latent
    args = dict(
        model=model, positive=tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2), latent_image=latent,
        divergence=20.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2, spsmd=True,
        spsmd_interval=0.2, deblur=True, seed=3, steps=STEPS, cfg=5.0, sampler_name="euler", scheduler="normal",
        denoise=1.0, disparity_model=depth_model, vae=vae,
    )
    args.update(kw)
    result = _node("StereoKSampler").execute(**args).result
    return result[0]["samples"], result[1]


def _estimate_from(model, depth_model, vae, x0):
    images = vae.decode(model.model.process_latent_out(x0))
    return _node("StereoEstimateDisparity").execute(
        disparity_model=depth_model, image=images, resolution=0, normalization="per image").result[0]


def test_the_map_is_the_estimate_of_the_decoded_prediction_before_the_shift(tiny_sd15, depth_model, vae, monkeypatch):
    seen = Predictions(monkeypatch)
    out, disparity = _one_pass(tiny_sd15, depth_model, vae)
    assert out.shape == (4, 4, 8, 12) and disparity.shape == (2, 64, 96)
    # the shift happens before the model call of step 2: the latest prediction is step 1's
    expected = _estimate_from(tiny_sd15, depth_model, vae, seen.x0[1][:2])
    torch.testing.assert_close(disparity, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(disparity[0], disparity[1])  # each image its own map


def test_refresh_estimates_again_at_every_spsmd_step_and_only_there(pack, tiny_sd15, depth_model, vae, monkeypatch):
    from headless.comfy_host import pack_module

    seen = Predictions(monkeypatch)
    calls = []
    disparity_nodes = pack_module("nodes.depth")
    original = disparity_nodes.run_disparity_model

    def counting(disparity_model, image, *args, **kwargs):
        calls.append(image.clone())
        return original(disparity_model, image, *args, **kwargs)

    monkeypatch.setattr(disparity_nodes, "run_disparity_model", counting)
    _, first = _one_pass(tiny_sd15, depth_model, vae, refresh=False)
    assert len(calls) == 1
    calls.clear()
    _, last = _one_pass(tiny_sd15, depth_model, vae, refresh=True)
    assert len(calls) == 4  # the shift and SPSMD steps 4, 6, 8
    expected = _estimate_from(tiny_sd15, depth_model, vae, seen.x0[7][:2])
    torch.testing.assert_close(last, expected, rtol=1e-5, atol=1e-6)  # the output is the latest map
    assert not torch.allclose(last, first)


def test_a_connected_map_wins_and_is_the_output_at_image_size(tiny_sd15, depth_model, vae):
    disparity = torch.rand(1, 16, 24, generator=torch.Generator().manual_seed(2))
    with_model, used = _one_pass(tiny_sd15, depth_model, vae, disparity=disparity)
    without, _ = _one_pass(tiny_sd15, None, None, disparity=disparity)
    assert torch.equal(with_model, without)
    assert used.shape == (2, 64, 96)
    torch.testing.assert_close(used.mean(dim=(1, 2)), disparity.mean().expand(2), rtol=0.05, atol=0.02)


def test_missing_inputs_are_named(tiny_sd15, depth_model, vae):
    with pytest.raises(ValueError, match="^vae: "):
        _one_pass(tiny_sd15, depth_model, None)
    with pytest.raises(ValueError, match="^disparity_model: "):
        _one_pass(tiny_sd15, None, vae)
    with pytest.raises(ValueError, match="^disparity: connect"):
        _one_pass(tiny_sd15, None, None)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde", "uni_pc", "heun"])
def test_one_pass_works_with_every_kind_of_sampler(tiny_sd15, depth_model, vae, sampler):
    out, disparity = _one_pass(tiny_sd15, depth_model, vae, sampler_name=sampler, latent={"samples": torch.zeros(1, 4, 8, 8)})
    assert torch.isfinite(out).all() and not torch.equal(out[:1], out[1:])
    assert disparity.shape == (1, 64, 64) and 0.0 <= float(disparity.min()) and float(disparity.max()) <= 1.0


def test_stereo_sampler_estimates_in_one_pass_too(tiny_sd15, depth_model, vae):
    import comfy.sample
    import comfy.samplers

    sampler = _node("StereoSampler").execute(
        sampler_name="euler", divergence=20.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
        spsmd=True, spsmd_interval=0.2, deblur=True, disparity_model=depth_model, vae=vae,
    ).result[0]
    sigmas = comfy.samplers.calculate_sigmas(tiny_sd15.get_model_object("model_sampling"), "normal", STEPS)
    latent = torch.zeros(1, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 0)
    out = comfy.sample.sample_custom(tiny_sd15, noise, 5.0, sampler, sigmas, tiny_conditioning(seed=1),
                                     tiny_conditioning(seed=2), latent, seed=0)
    assert out.shape == (2, 4, 8, 8) and not torch.equal(out[:1], out[1:])


def test_stereo_sampler_disparity_gives_the_map_after_sampling(tiny_sd15, depth_model, vae, monkeypatch):
    import comfy.sample
    import comfy.samplers

    sampler = _node("StereoSampler").execute(
        sampler_name="euler", divergence=20.0, convergence=0.0, subpixel=True, balance=0.0, shift_at=0.2,
        spsmd=True, spsmd_interval=0.2, deblur=True, disparity_model=depth_model, vae=vae,
    ).result[0]
    read = _node("StereoSamplerDisparity").execute
    with pytest.raises(ValueError, match="has not sampled yet"):
        read(sampler=sampler, stereo_latent={"samples": torch.zeros(4, 4, 8, 12)})
    sigmas = comfy.samplers.calculate_sigmas(tiny_sd15.get_model_object("model_sampling"), "normal", STEPS)
    latent = torch.zeros(2, 4, 8, 12)
    x0 = {}
    out = comfy.sample.sample_custom(
        tiny_sd15, comfy.sample.prepare_noise(latent, 0), 5.0, sampler, sigmas, tiny_conditioning(seed=1),
        tiny_conditioning(seed=2), latent, seed=0, callback=lambda step, d, x, total: x0.setdefault(step, d.clone()),
    )
    disparity = read(sampler=sampler, stereo_latent={"samples": out}).result[0]
    assert disparity.shape == (2, 64, 96)
    expected = _estimate_from(tiny_sd15, depth_model, vae, x0[1][:2])
    torch.testing.assert_close(disparity, expected, rtol=1e-5, atol=1e-6)
    given = _node("StereoSampler").execute(
        sampler_name="euler", disparity=torch.ones(1, 8, 8) * 0.5, divergence=20.0, convergence=0.0, subpixel=True,
        balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
    ).result[0]
    with pytest.raises(ValueError, match="has not sampled yet"):  # a latent it did not make
        read(sampler=given, stereo_latent={"samples": torch.zeros(4, 4, 8, 12)})
    out = comfy.sample.sample_custom(
        tiny_sd15, comfy.sample.prepare_noise(latent, 0), 5.0, given, sigmas, tiny_conditioning(seed=1),
        tiny_conditioning(seed=2), latent, seed=0,
    )
    mask = read(sampler=given, stereo_latent={"samples": out}).result[0]
    assert mask.shape == (2, 64, 96) and torch.allclose(mask, torch.full_like(mask, 0.5))


def test_one_pass_in_chunks_estimates_each_chunk_and_returns_every_frame_map(tiny_sd15, depth_model, vae):
    latent = {"samples": torch.zeros(3, 4, 8, 12)}
    whole, whole_maps = _one_pass(tiny_sd15, depth_model, vae, latent, frame_chunk=3, eyes="separate")
    chunked, maps = _one_pass(tiny_sd15, depth_model, vae, latent, frame_chunk=2, eyes="separate")
    assert maps.shape == whole_maps.shape == (3, 64, 96)
    torch.testing.assert_close(maps, whole_maps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-4 * float(whole.abs().max()))
