"""VR180 floating screen: the equirect views checked against the definition (a flat image on the
plane at distance 1 straight ahead, fov degrees wide, seen along each pixel's longitude/latitude)."""

from __future__ import annotations

import math

import pytest
import torch

from stereo_pack.stereo_ops.vr180 import auto_eye_size, equirect_rays, flat_to_vr180, screen_grid

SIZE = 181  # odd: one pixel column and row sit exactly on longitude 0 and latitude 0


def lon_of_column(j: int, size: int = SIZE) -> float:
    return ((j + 0.5) / size - 0.5) * 180.0


def test_the_centre_pixel_looks_straight_ahead_at_the_image_centre():
    lon, lat = equirect_rays(SIZE)
    assert lon[SIZE // 2, SIZE // 2] == 0 and lat[SIZE // 2, SIZE // 2] == 0
    grid = screen_grid(SIZE, 40, 60, 90.0)
    assert grid[0, SIZE // 2, SIZE // 2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("fov", [60.0, 90.0, 120.0])
def test_the_image_edges_sit_at_plus_minus_half_the_fov_in_longitude(fov):
    white = torch.ones(1, 30, 50, 3)
    out = flat_to_vr180(white, fov, SIZE)[0, SIZE // 2, :, 0]  # the equator, left to right
    pixel = 180.0 / SIZE
    for j in range(SIZE):
        lon = lon_of_column(j)
        if abs(lon) < fov / 2 - pixel:
            assert out[j] == pytest.approx(1.0), (fov, lon)
        elif abs(lon) > fov / 2 + pixel:
            assert out[j] == 0.0, (fov, lon)
    lit = [lon_of_column(j) for j in range(SIZE) if out[j] > 0.5]
    assert min(lit) == pytest.approx(-fov / 2, abs=pixel) and max(lit) == pytest.approx(fov / 2, abs=pixel)


@pytest.mark.parametrize(("h", "w"), [(30, 50), (50, 50), (60, 30)])
def test_the_vertical_fov_follows_the_aspect_ratio(h, w):
    fov = 90.0
    expected = math.degrees(math.atan(math.tan(math.radians(fov / 2)) * h / w))  # half height as an angle
    white = torch.ones(1, h, w, 3)
    column = flat_to_vr180(white, fov, SIZE)[0, :, SIZE // 2, 0]  # the meridian, top to bottom
    lit = [90.0 - (i + 0.5) * 180.0 / SIZE for i in range(SIZE) if column[i] > 0.5]
    assert max(lit) == pytest.approx(expected, abs=180.0 / SIZE)
    assert min(lit) == pytest.approx(-expected, abs=180.0 / SIZE)


def test_every_output_pixel_shows_the_source_point_its_ray_meets():
    """Forward definition: the plane point (u, v) is seen at longitude atan(u) and latitude
    atan(v / sqrt(1 + u^2)). A source whose value is linear in u and in v must read back exactly."""
    h, w, fov = 40, 64, 100.0
    half_w = math.tan(math.radians(fov / 2))
    half_h = half_w * h / w
    us = (torch.arange(w) + 0.5) / w * 2 - 1  # pixel centres, -1..1 of the half width
    vs = 1 - (torch.arange(h) + 0.5) / h * 2
    source = torch.stack([us[None, :].expand(h, w), vs[:, None].expand(h, w), torch.zeros(h, w)], -1)[None]
    out = flat_to_vr180(source, fov, SIZE)[0]
    checked = 0
    for u_frac in (-0.8, -0.3, 0.0, 0.45, 0.7):
        for v_frac in (-0.6, 0.0, 0.5):
            u, v = u_frac * half_w, v_frac * half_h
            lon = math.degrees(math.atan(u))
            lat = math.degrees(math.atan2(v, math.sqrt(1 + u * u)))
            j = round((lon / 180.0 + 0.5) * SIZE - 0.5)
            i = round((0.5 - lat / 180.0) * SIZE - 0.5)
            # the pixel centre is within half a pixel of (lon, lat): compare with its own ray's point
            lon_c = math.radians(lon_of_column(j))
            lat_c = math.radians(90.0 - (i + 0.5) * 180.0 / SIZE)
            u_c = math.tan(lon_c)
            v_c = math.tan(lat_c) / math.cos(lon_c)
            assert out[i, j, 0].item() == pytest.approx(u_c / half_w, abs=1e-4)
            assert out[i, j, 1].item() == pytest.approx(v_c / half_h, abs=1e-4)
            assert abs(u_c - u) < 0.05 and abs(v_c - v) < 0.05
            checked += 1
    assert checked == 15


def test_outside_the_screen_is_black():
    out = flat_to_vr180(torch.ones(2, 30, 50, 3), 90.0, 64)
    for corner in (out[:, 0, 0], out[:, 0, -1], out[:, -1, 0], out[:, -1, -1], out[:, 32, 0], out[:, 0, 32]):
        assert torch.all(corner == 0)


def test_auto_size_keeps_the_source_pixel_density_at_the_centre():
    # at the centre, a source pixel spans 2 tan(fov/2) / W radians and an equirect pixel pi / size
    size = auto_eye_size(512, 90.0)
    assert size % 2 == 0 and size == pytest.approx(math.pi * 512 / 2, abs=1)


def test_fov_outside_the_range_is_refused():
    with pytest.raises(ValueError, match="fov"):
        flat_to_vr180(torch.ones(1, 4, 4, 3), 180.0, 16)
