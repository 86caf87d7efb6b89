"""A clip through the Stereo KSampler in chunks of frames: every frame's left view is the same whatever
the chunk size, the noise of a frame comes from the seed and its index, and chunk size 0 is today's
one-batch run."""

import pytest
import torch

from testkit.tiny_models import tiny_conditioning

pytestmark = pytest.mark.usefixtures("pack")

FRAMES = 5
LATENT = {"samples": torch.zeros(FRAMES, 4, 8, 8)}
DISPARITY = torch.rand(FRAMES, 32, 32, generator=torch.Generator().manual_seed(5))
CHUNKS = [1, 2, 3, FRAMES]


def _node(name):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[name]


def _with_prediction(model, prediction):
    """An eps model whose UNet is `prediction` (elementwise: no batch layout changes its rounding)."""
    patched = model.clone()
    sampling = model.get_model_object("model_sampling")

    def wrapper(apply_model, args):
        x_in, t, c = args["input"], args["timestep"], args["c"]
        sigma = sampling.sigma(t).view(-1, 1, 1, 1)
        x = x_in * (sigma**2 + 1.0) ** 0.5
        context = c["c_crossattn"].float().mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return (x - prediction(x, sigma, context)) / sigma

    patched.set_model_unet_function_wrapper(wrapper)
    return patched


@pytest.fixture(scope="module")
def cheap_model(tiny_sd15):
    return _with_prediction(
        tiny_sd15, lambda x, sigma, c: torch.tanh(x / (1.0 + sigma)) * 0.8 + torch.roll(x, 1, dims=-1) * 0.02 + c
    )


def _stereo(model, sampler="euler", frame_chunk=0, latent=LATENT, steps=6, eyes="separate", denoise=1.0,
            temporal_holes=False, balance=0.0, positive=None, **kw):
    return _node("StereoKSampler").execute(
        model=model, positive=positive or tiny_conditioning(seed=1), negative=tiny_conditioning(seed=2),
        latent_image=latent,
        disparity=kw.pop("disparity", DISPARITY), divergence=20.0, convergence=0.0, subpixel=True, balance=balance,
        shift_at=0.3, spsmd=True, spsmd_interval=0.3, deblur=True, seed=42, steps=steps, cfg=4.0,
        sampler_name=sampler, scheduler="normal", denoise=denoise, eyes=eyes, frame_chunk=frame_chunk,
        temporal_holes=temporal_holes, **kw,
    ).result[0]["samples"]


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "sa_solver"])
def test_the_stereo_batch_is_the_same_for_every_chunk_size(cheap_model, sampler):
    runs = {chunk: _stereo(cheap_model, sampler, chunk) for chunk in CHUNKS}
    whole = runs[FRAMES]
    assert whole.shape == (2 * FRAMES, 4, 8, 8)
    for chunk, out in runs.items():
        if sampler.startswith("sa_solver"):  # its update is a matrix product over the batch
            assert float((out - whole).abs().max()) <= 1e-5 * float(whole.abs().max()), chunk
        else:
            assert torch.equal(out, whole), (sampler, chunk)
    assert not torch.equal(whole[FRAMES:], whole[:FRAMES])


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_chunks_of_a_noise_free_sampler_give_the_one_batch_result(cheap_model, sampler):
    # The start noise of frame i is the host's i-th draw, which is its whole-batch draw as well
    # (a frame's latent holds 256 values, a multiple of 16): deterministic solvers' left views agree
    # with 0 (the right views' deblur noise is drawn per frame once chunked).
    assert torch.equal(_stereo(cheap_model, sampler, 2)[:FRAMES], _stereo(cheap_model, sampler, 0)[:FRAMES])


def test_ancestral_noise_is_per_frame_once_chunked(cheap_model):
    # frame_chunk 0 keeps the plain KSampler's whole-batch step noise; chunked, each frame draws its own.
    zero, chunked = _stereo(cheap_model, "euler_ancestral", 0), _stereo(cheap_model, "euler_ancestral", 2)
    assert not torch.equal(zero[:FRAMES], chunked[:FRAMES])


def test_a_frame_is_the_same_inside_any_clip(cheap_model):
    # Frame 3 of a 5-frame clip is frame 3 of the clip cut after it.
    short = {"samples": LATENT["samples"][:4]}
    a = _stereo(cheap_model, "euler_ancestral", 2)
    b = _stereo(cheap_model, "euler_ancestral", 3, latent=short, disparity=DISPARITY[:4])
    assert torch.equal(a[3], b[3]) and torch.equal(a[FRAMES + 3], b[4 + 3])


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral"])
def test_left_views_through_the_real_unet_do_not_depend_on_the_chunk_size(tiny_sd15, sampler):
    latent = {"samples": LATENT["samples"][:4]}
    # The sampling is exact (the stand-in above is bit for bit); the UNet's CPU kernels round a batch
    # of 4 differently from a batch of 1 or 3, by about 2e-6 of the range on the machine this was written on.
    runs = {chunk: _stereo(tiny_sd15, sampler, chunk, latent=latent, steps=4, disparity=DISPARITY[:4])
            for chunk in (1, 3, 4)}
    scale = float(runs[4][:4].abs().max())
    for chunk in (1, 3):
        assert float((runs[chunk][:4] - runs[4][:4]).abs().max()) <= 1e-5 * scale, chunk
    batched = _stereo(tiny_sd15, sampler, 3, latent=latent, steps=4, eyes="batched", disparity=DISPARITY[:4])
    assert float((batched[:4] - runs[4][:4]).abs().max()) <= 1e-4 * scale
    assert float((runs[1][4:] - runs[4][4:]).abs().max()) <= 1e-5 * scale  # the right views too


def test_frame_chunk_must_not_be_negative(cheap_model):
    with pytest.raises(ValueError, match="^frame_chunk"):
        _stereo(cheap_model, "euler", -1)



@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral"])
def test_temporal_holes_change_the_right_views_only(cheap_model, sampler):
    latent = {"samples": torch.randn(FRAMES, 4, 8, 8, generator=torch.Generator().manual_seed(4))}
    off = _stereo(cheap_model, sampler, 2, latent=latent, denoise=0.7)
    on = _stereo(cheap_model, sampler, 2, latent=latent, denoise=0.7, temporal_holes=True)
    assert torch.equal(on[:FRAMES], off[:FRAMES])
    assert torch.equal(on[FRAMES], off[FRAMES])  # frame 0 has nothing before it
    assert not torch.equal(on[FRAMES + 1:], off[FRAMES + 1:])


def test_progress_runs_over_all_chunks_and_an_interrupt_stops_between_them(cheap_model):
    import comfy.model_management
    import comfy.utils

    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        _stereo(cheap_model, "euler", 2, steps=4)
        assert seen[-1] == (12, 12) and [v for v, _ in seen] == list(range(1, 13))  # 3 chunks of 4 steps

        def interrupt_after_first_chunk(value, total, preview, node_id=None):
            if value == 4:
                comfy.model_management.interrupt_current_processing(True)

        comfy.utils.set_progress_bar_global_hook(interrupt_after_first_chunk)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            _stereo(cheap_model, "euler", 2, steps=4)
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
        comfy.model_management.interrupt_current_processing(False)


def test_per_frame_conditioning_is_cut_to_each_chunk(cheap_model):
    # One prompt per frame (a batch of FRAMES contexts): chunk 2 must give frame i its own prompt.
    per_frame = tiny_conditioning(batch=FRAMES, seed=9)
    whole = _stereo(cheap_model, "euler", FRAMES, positive=per_frame)
    assert torch.equal(_stereo(cheap_model, "euler", 2, positive=per_frame), whole)
    assert not torch.equal(whole, _stereo(cheap_model, "euler", FRAMES))


def test_conditioning_rows_cut_per_frame_parts_and_control_hints_only():
    from types import SimpleNamespace

    from headless import comfy_host

    conditioning_rows = comfy_host.pack_module("nodes.frame_chunks").conditioning_rows
    hints = torch.arange(5.0).view(5, 1, 1, 1)
    first = SimpleNamespace(cond_hint_original=hints, cond_hint="cached", previous_controlnet=None)
    second = SimpleNamespace(cond_hint_original=torch.ones(1, 1, 1, 1), cond_hint=None, previous_controlnet=first)
    shared, pooled = torch.zeros(1, 3, 2), torch.arange(5.0).view(5, 1)
    cut = conditioning_rows([[shared, {"pooled_output": pooled, "control": second, "strength": 1.0}]], slice(2, 4), 5)
    tensor, extra = cut[0]
    assert tensor is shared and torch.equal(extra["pooled_output"], pooled[2:4]) and extra["strength"] == 1.0
    chain = extra["control"]
    assert chain is not second and chain.cond_hint_original.shape[0] == 1  # a shared hint stays
    assert torch.equal(chain.previous_controlnet.cond_hint_original, hints[2:4])
    assert chain.previous_controlnet.cond_hint is None and first.cond_hint == "cached"  # the original is untouched


def test_start_noise_of_a_frame_is_the_hosts_noise_for_that_index():
    import comfy.sample

    from stereo_pack.stereo_ops.frame_noise import StartNoise, frame_ranges

    latent = torch.zeros(4, 4, 9, 9)  # 324 values a frame: the host's whole-batch draw differs here
    indices = [3, 1, 4, 1]
    host = comfy.sample.prepare_noise(latent, 17, indices)
    noise = StartNoise(17, latent.shape[1:])
    ours = torch.cat([noise.frames(indices[:2], later=indices[2:]), noise.frames(indices[2:])])
    assert torch.equal(ours, host)
    even = torch.zeros(3, 4, 8, 8)  # 256 values a frame: the whole-batch draw is the frames' draws
    assert torch.equal(StartNoise(17, even.shape[1:]).frames([0, 1, 2]), comfy.sample.prepare_noise(even, 17))
    assert [list(r) for r in frame_ranges(5, 2)] == [[0, 1], [2, 3], [4]] and len(frame_ranges(5, 0)) == 1
