"""Side-by-side layouts: exact pixels on small synthetic pairs."""

import pytest
import torch

from stereo_pack.stereo_ops import LAYOUTS, VR_SUFFIXES, side_by_side, split_side_by_side, squeeze_to


def pair(b=1, h=2, w=4, c=3):
    """Left: value 1 + column index; right: value 10 + column index (so every pixel is traceable)."""
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, w, 1).expand(b, h, w, c)
    rows = torch.arange(h, dtype=torch.float32).view(1, h, 1, 1) * 100
    batch = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1) * 1000
    return 1 + cols + rows + batch, 10 + cols + rows + batch


def test_parallel_puts_the_left_eye_on_the_left():
    left, right = pair()
    out = side_by_side(left, right, "parallel")
    assert out.shape == (1, 2, 8, 3)
    assert torch.equal(out[:, :, :4], left) and torch.equal(out[:, :, 4:], right)


def test_cross_eyed_puts_the_right_eye_on_the_left():
    left, right = pair()
    out = side_by_side(left, right, "cross-eyed")
    assert torch.equal(out[:, :, :4], right) and torch.equal(out[:, :, 4:], left)


def test_top_bottom_puts_the_left_eye_on_top():
    left, right = pair(h=3)
    out = side_by_side(left, right, "top-bottom")
    assert out.shape == (1, 6, 4, 3)
    assert torch.equal(out[:, :3], left) and torch.equal(out[:, 3:], right)


def test_swap_eyes_exchanges_the_views():
    left, right = pair()
    assert torch.equal(side_by_side(left, right, "parallel", swap_eyes=True), side_by_side(left, right, "cross-eyed"))
    assert torch.equal(side_by_side(left, right, "cross-eyed", swap_eyes=True), side_by_side(left, right, "parallel"))
    tb = side_by_side(left, right, "top-bottom", swap_eyes=True)
    assert torch.equal(tb[:, :2], right)


def test_divider_sits_between_the_views():
    left, right = pair()
    out = side_by_side(left, right, "parallel", divider=3, divider_value=0.5)
    assert out.shape == (1, 2, 11, 3)
    assert torch.equal(out[:, :, :4], left)
    assert torch.all(out[:, :, 4:7] == 0.5)
    assert torch.equal(out[:, :, 7:], right)
    tb = side_by_side(left, right, "top-bottom", divider=1, divider_value=1.0)
    assert tb.shape == (1, 5, 4, 3) and torch.all(tb[:, 2] == 1.0) and torch.equal(tb[:, 3:], right)


def test_half_width_averages_exact_pixel_pairs_and_keeps_the_frame_size():
    left, right = pair(w=4)
    out = side_by_side(left, right, "parallel-half")
    assert out.shape == left.shape
    # Row 0 of the full frame: 1 2 3 4 | 10 11 12 13 -> 1.5 3.5 10.5 12.5
    assert out[0, 0, :, 0].tolist() == [1.5, 3.5, 10.5, 12.5]
    assert out[0, 1, :, 0].tolist() == [101.5, 103.5, 110.5, 112.5]
    cross = side_by_side(left, right, "cross-eyed-half")
    assert cross[0, 0, :, 0].tolist() == [10.5, 12.5, 1.5, 3.5]


def test_half_height_averages_exact_row_pairs():
    left, right = pair(h=2, w=3)
    out = side_by_side(left, right, "top-bottom-half")
    assert out.shape == left.shape
    # Column 0 of the full frame, top to bottom: 1 101 | 10 110 -> 51, 60
    assert out[0, :, 0, 0].tolist() == [51.0, 60.0]


def test_half_width_of_an_odd_width_keeps_the_frame_and_mixes_only_the_middle_column():
    left, right = pair(w=3)
    out = side_by_side(left, right, "parallel-half")
    assert out.shape == (1, 2, 3, 3)
    # Full row 0: 1 2 3 10 11 12 -> pairs (1,2) (3,10) (11,12)
    assert out[0, 0, :, 0].tolist() == [1.5, 6.5, 11.5]


def test_half_width_is_antialiased_not_decimated():
    # A one-pixel checkerboard would alias to a flat colour under decimation; area keeps the mean.
    left = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 4, 1)
    out = side_by_side(left, 1 - left, "parallel-half")
    assert torch.allclose(out, torch.full_like(out, 0.5))


def test_odd_sizes_and_batches_keep_each_pair_together():
    left, right = pair(b=3, h=5, w=7)
    out = side_by_side(left, right, "parallel")
    assert out.shape == (3, 5, 14, 3)
    for i in range(3):
        assert torch.equal(out[i, :, :7], left[i]) and torch.equal(out[i, :, 7:], right[i])
    for layout in LAYOUTS:
        composed = side_by_side(left, right, layout)
        assert composed.shape[0] == 3
        if layout.endswith("-half"):
            assert composed.shape == left.shape


@pytest.mark.parametrize("layout", ["parallel", "cross-eyed", "top-bottom"])
def test_split_undoes_full_layouts(layout):
    left, right = pair(b=2, h=3, w=5)
    l2, r2 = split_side_by_side(side_by_side(left, right, layout), layout)
    assert torch.equal(l2, left) and torch.equal(r2, right)


def test_squeeze_to_is_identity_at_the_same_size():
    x = torch.rand(1, 3, 5, 3)
    assert squeeze_to(x, 3, 5) is x


def test_every_layout_has_a_vr_suffix():
    assert set(VR_SUFFIXES) == set(LAYOUTS)
    assert VR_SUFFIXES["parallel-half"] == "_LR" and VR_SUFFIXES["top-bottom-half"] == "_TB"


def test_mismatched_views_give_a_clear_error():
    left, right = pair(w=4)
    with pytest.raises(ValueError, match="same batch size, height, width"):
        side_by_side(left, right[:, :, :3])
    with pytest.raises(ValueError, match="layout must be one of"):
        side_by_side(left, right, "diagonal")
    with pytest.raises(ValueError, match="divider"):
        side_by_side(left, right, divider=-1)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        side_by_side(left[0], right[0])
