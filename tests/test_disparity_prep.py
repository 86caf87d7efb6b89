import pytest
import torch

from stereo_pack.stereo_ops import fit_disparity_to_grid, normalize_whole_batch, prepare_disparity


def test_per_sample_normalisation_and_resize_to_a_non_square_latent():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 96, 160, generator=g) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1) + 2
    out = prepare_disparity(maps, 12, 20)
    assert out.shape == (3, 12, 20)
    for i in range(3):
        assert out[i].min() == 0.0 and out[i].max() == 1.0


def test_invert_turns_depth_into_disparity():
    depth = torch.linspace(1, 10, 50).view(1, 1, 50).repeat(1, 4, 1)  # far on the right
    disp = prepare_disparity(depth, 4, 50, invert=True)
    assert disp[0, 0, 0] == 1.0 and disp[0, 0, -1] == 0.0
    torch.testing.assert_close(disp, 1.0 - prepare_disparity(depth, 4, 50))


def test_flat_map_means_no_parallax_even_inverted():
    flat = torch.full((2, 8, 8), 0.3)
    assert torch.equal(prepare_disparity(flat, 4, 4), torch.zeros(2, 4, 4))
    assert torch.equal(prepare_disparity(flat, 4, 4, invert=True), torch.zeros(2, 4, 4))


def test_without_normalisation_values_are_kept_and_clamped():
    d = torch.tensor([[[-0.5, 0.25], [0.75, 2.0]]])
    assert torch.equal(prepare_disparity(d, 2, 2, normalize=False), torch.tensor([[[0.0, 0.25], [0.75, 1.0]]]))
    assert torch.equal(prepare_disparity(d, 2, 2, normalize=False, invert=True), torch.tensor([[[1.0, 0.75], [0.25, 0.0]]]))


def test_single_map_broadcasts_to_the_batch_and_other_counts_are_refused():
    one = torch.rand(1, 16, 16)
    assert prepare_disparity(one, 8, 8, batch_size=4).shape == (4, 8, 8)
    assert prepare_disparity(one[0], 8, 8, batch_size=2).shape == (2, 8, 8)
    with pytest.raises(ValueError, match="one map per image"):
        prepare_disparity(torch.rand(3, 16, 16), 8, 8, batch_size=2)


def test_bad_maps_get_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        prepare_disparity(torch.rand(2, 3, 8, 8), 4, 4)
    with pytest.raises(ValueError, match="NaN"):
        prepare_disparity(torch.tensor([[[float("nan"), 1.0]]]), 1, 2)
    with pytest.raises(TypeError):
        prepare_disparity([[0.0]], 1, 1)


def test_whole_batch_normalisation_keeps_relative_levels():
    maps = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0)])
    out = normalize_whole_batch(maps)
    assert out[0].max() == 0.0 and out[1].min() == 1.0


@pytest.mark.parametrize("pole", [1, 2])
@pytest.mark.parametrize("offset", range(8))
def test_a_thin_near_object_keeps_its_full_shift_on_the_latent_grid(pole, offset):
    # A near pole one or two latent pixels wide, anywhere within the 8x grid, on a far background:
    # the map the sampler shifts with still reaches disparity 1 (the full divergence).
    d = torch.zeros(1, 16, 256)
    d[:, :, 100 + offset:100 + offset + 8 * pole] = 1.0
    fitted = fit_disparity_to_grid(d, 2, 32)
    assert float(fitted.amax()) == 1.0
    assert torch.equal(prepare_disparity(d, 2, 32, normalize=False), fitted)


def test_the_grid_fit_keeps_a_smooth_slope_unbiased():
    ramp = torch.linspace(0.0, 1.0, 256).expand(1, 16, 256)
    area = torch.nn.functional.adaptive_avg_pool2d(ramp.unsqueeze(1), (2, 32))[:, 0]
    torch.testing.assert_close(fit_disparity_to_grid(ramp, 2, 32), area)
