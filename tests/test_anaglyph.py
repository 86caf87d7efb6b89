"""Anaglyph methods: exact expected colours, computed here by scalar arithmetic."""

import math

import pytest
import torch

from stereo_pack.stereo_ops import ANAGLYPH_METHODS, anaglyph, linear_to_srgb, srgb_to_linear


def px(*rgb):
    return torch.tensor(rgb, dtype=torch.float64).view(1, 1, 1, 3)


def dec(v):
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def enc(v):
    v = min(max(v, 0.0), 1.0)
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def luma(r, g, b):
    return 0.299 * r + 0.587 * g + 0.114 * b


L = (0.8, 0.4, 0.2)
R = (0.1, 0.6, 0.9)


def close(out, expected):
    assert out.shape == (1, 1, 1, 3)
    assert torch.allclose(out.flatten(), torch.tensor(expected, dtype=out.dtype), atol=1e-9), (out.flatten(), expected)


def test_color_takes_red_from_the_left_and_cyan_from_the_right():
    close(anaglyph(px(*L), px(*R), "color"), (0.8, 0.6, 0.9))


def test_half_color_uses_left_luma_for_red():
    close(anaglyph(px(*L), px(*R), "half-color"), (luma(*L), 0.6, 0.9))


def test_gray_uses_luma_of_each_eye():
    close(anaglyph(px(*L), px(*R), "gray"), (luma(*L), luma(*R), luma(*R)))


def test_true_anaglyph_has_no_green():
    close(anaglyph(px(*L), px(*R), "true"), (luma(*L), 0.0, luma(*R)))


def test_optimized_drops_the_left_red_channel():
    close(anaglyph(px(*L), px(*R), "optimized"), (0.7 * 0.4 + 0.3 * 0.2, 0.6, 0.9))


DUBOIS_L = ((0.456, 0.500, 0.176), (-0.040, -0.038, -0.016), (-0.015, -0.021, -0.005))
DUBOIS_R = ((-0.043, -0.088, -0.002), (0.378, 0.734, -0.018), (-0.072, -0.113, 1.226))


def dubois_expected(left, right):
    ll = [dec(v) for v in left]
    rl = [dec(v) for v in right]
    out = []
    for k in range(3):
        lin = sum(DUBOIS_L[k][j] * ll[j] for j in range(3)) + sum(DUBOIS_R[k][j] * rl[j] for j in range(3))
        out.append(enc(lin))
    return tuple(out)


@pytest.mark.parametrize(
    "left,right",
    [
        ((1.0, 0.0, 0.0), (0.0, 0.0, 0.0)),  # pure red left: only the red channel lights up
        ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # pure blue right: blue clips at 1, red/green clip at 0
        ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # mid grey in both eyes
        (L, R),
    ],
)
def test_dubois_matches_the_published_matrices_in_linear_light(left, right):
    close(anaglyph(px(*left), px(*right), "dubois"), dubois_expected(left, right))


def test_dubois_known_values():
    # Pure red in the left eye: linear R = 0.456 -> sRGB 0.7077...; G and B are negative and clip.
    out = anaglyph(px(1, 0, 0), px(0, 0, 0), "dubois").flatten().tolist()
    assert out[0] == pytest.approx(1.055 * 0.456 ** (1 / 2.4) - 0.055, abs=1e-12)
    assert out[1] == 0.0 and out[2] == 0.0
    # White in both eyes: each row sums to the row sums of both matrices.
    white = anaglyph(px(1, 1, 1), px(1, 1, 1), "dubois").flatten().tolist()
    assert white[0] == pytest.approx(enc(1.132 - 0.133), abs=1e-12)
    assert white[1] == pytest.approx(enc(-0.094 + 1.094), abs=1e-12)
    assert white[2] == pytest.approx(1.0, abs=1e-12)  # -0.041 + 1.041


def test_dubois_is_not_the_same_matrix_applied_to_srgb_values():
    left, right = px(0.5, 0.3, 0.2), px(0.2, 0.4, 0.6)
    out = anaglyph(left, right, "dubois").flatten()
    naive = [
        sum(DUBOIS_L[k][j] * left.flatten()[j].item() + DUBOIS_R[k][j] * right.flatten()[j].item() for j in range(3))
        for k in range(3)
    ]
    assert not torch.allclose(out, torch.tensor(naive, dtype=out.dtype), atol=1e-3)


def test_srgb_round_trip_and_reference_points():
    x = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert srgb_to_linear(torch.tensor(0.5, dtype=torch.float64)).item() == pytest.approx(0.21404114, abs=1e-8)
    assert math.isclose(linear_to_srgb(torch.tensor(0.0031308, dtype=torch.float64)).item(), 0.0031308 * 12.92)


@pytest.mark.parametrize("method", ANAGLYPH_METHODS)
def test_every_method_keeps_batch_and_odd_sizes_and_stays_in_range(method):
    gen = torch.Generator().manual_seed(0)
    left, right = torch.rand(3, 5, 7, 3, generator=gen), torch.rand(3, 5, 7, 3, generator=gen)
    out = anaglyph(left, right, method)
    assert out.shape == (3, 5, 7, 3) and out.dtype == left.dtype
    assert out.min() >= 0 and out.max() <= 1
    # Each pair is composed on its own.
    assert torch.allclose(anaglyph(left[1:2], right[1:2], method), out[1:2])


@pytest.mark.parametrize("method", ANAGLYPH_METHODS)
def test_red_channel_comes_from_the_left_eye_only(method):
    gen = torch.Generator().manual_seed(1)
    left, r1, r2 = (torch.rand(1, 2, 2, 3, generator=gen) for _ in range(3))
    a, b = anaglyph(left, r1, method), anaglyph(left, r2, method)
    if method == "dubois":  # Dubois mixes a little of the right eye into red, by design
        assert not torch.equal(a[..., 0], b[..., 0])
    else:
        assert torch.equal(a[..., 0], b[..., 0])


def test_bad_input_gives_a_clear_error():
    with pytest.raises(ValueError, match="method must be one of"):
        anaglyph(px(0, 0, 0), px(0, 0, 0), "green-magenta")
    with pytest.raises(ValueError, match="same shape"):
        anaglyph(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="3 channels"):
        anaglyph(torch.zeros(1, 2, 2, 4), torch.zeros(1, 2, 2, 4))
