"""bench/eval_quality.py: dataset readers, metrics, and every method on exact synthetic scenes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import eval_quality as evalq
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene


def _rows(table: str) -> dict[str, list[str]]:
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_synthetic_run_ranks_the_full_resolution_warp_above_latent_warping():
    rows = _rows(evalq.main(["--dataset", "synthetic", "--methods", "warp,latent_warp", "--no-lpips"]))
    warp_psnr, latent_psnr = float(rows["warp"][0]), float(rows["latent_warp"][0])
    assert warp_psnr > 28.0 and warp_psnr > latent_psnr + 4.0
    assert float(rows["warp"][1]) > float(rows["latent_warp"][1])
    assert rows["warp"][2] == "n/a"


def test_ground_truth_pixels_map_to_the_exact_pack_settings():
    sample = next(evalq.synthetic(1))
    d, divergence = sample.pack_settings()
    assert float(d.max()) == pytest.approx(1.0)
    a = d * divergence / 100.0 * sample.left.shape[-1]
    torch.testing.assert_close(a, sample.disparity_px, atol=1e-4, rtol=0)


def test_metrics_are_exact_on_known_cases():
    x = torch.rand(1, 3, 32, 32)
    assert evalq.psnr(x, x) == math.inf and evalq.ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert evalq.psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-3)
    assert evalq.ssim(x, 1 - x) < 0.5


def test_background_fill_takes_the_right_neighbour():
    image = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 6)
    holes = torch.tensor([[[False, True, True, False, False, True]]])
    filled = evalq.fill_holes_from_background(image, holes)
    assert filled.flatten().tolist() == [0, 3, 3, 3, 4, 4]


def _write_pfm(path: Path, data: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(b"Pf\n" + f"{data.shape[1]} {data.shape[0]}\n".encode() + b"-1.0\n")
        np.flipud(data).astype("<f4").tofile(f)


def test_dataset_readers_load_middlebury_and_kitti_layouts(tmp_path):
    scene = layered_scene(40, 64, 10.0)
    to_png = lambda t, p: Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(p)  # noqa: E731
    disp_px = (scene.disparity[0] * 6.4).numpy().astype(np.float32)

    mb = tmp_path / "mb" / "Scene-perfect"
    mb.mkdir(parents=True)
    to_png(scene.center.image, mb / "im0.png")
    to_png(scene.right.image, mb / "im1.png")
    holes = disp_px.copy()
    holes[5, 7] = np.inf  # Middlebury marks unknown disparities as inf
    _write_pfm(mb / "disp0.pfm", holes)
    [s] = list(evalq.middlebury2014(tmp_path / "mb"))
    assert s.left.shape == (1, 3, 40, 64) and torch.isfinite(s.disparity_px).all()
    np.testing.assert_allclose(s.disparity_px[0, 6].numpy(), disp_px[6], rtol=1e-6)

    kitti = tmp_path / "kitti"
    for sub in ("image_2", "image_3", "disp_occ_0"):
        (kitti / sub).mkdir(parents=True)
    to_png(scene.center.image, kitti / "image_2" / "000000_10.png")
    to_png(scene.right.image, kitti / "image_3" / "000000_10.png")
    sparse = (disp_px * 256).astype(np.uint16)
    sparse[::3] = 0  # LiDAR leaves rows and points without a value
    Image.fromarray(sparse).save(kitti / "disp_occ_0" / "000000_10.png")
    [k] = list(evalq.kitti2015(kitti))
    assert (k.disparity_px > 0).all()  # filled along the rows
    np.testing.assert_allclose(k.disparity_px[0, 1].numpy(), sparse[1] / 256.0, rtol=1e-6)

    resized = evalq._resize(k, 32)
    assert resized.left.shape == (1, 3, 24, 32) or resized.left.shape == (1, 3, 16, 32)
    assert float(resized.disparity_px.max()) == pytest.approx(float(k.disparity_px.max()) / 2, rel=0.05)


def test_model_methods_run_through_the_host_nodes(pack):
    from testkit import tiny_checkpoints

    tiny = tiny_checkpoints.tiny_models()
    host = object.__new__(evalq.HostMethods)  # the host is already running in this process
    import nodes

    host.nodes = nodes
    host.args = argparse.Namespace(prompt="a photo", inpaint_prompt="background", steps=3, cfg=2.0,
                                   inversion="fixed_point", seed=0)
    host.model, host.clip, host.vae = host._load(tiny.sd15)
    host.inpaint = (host.model, host.clip, host.vae)
    scene = layered_scene(64, 64, 8.0, dtype=torch.float32)
    sample = evalq.Sample("s", scene.center.image, scene.right.image, scene.disparity * 0.08 * 64)
    rows = _rows(evalq.table(evalq.evaluate(iter([sample]), {
        "stereodiffusion": host.stereodiffusion, "refine": host.refine, "warp_inpaint": host.warp_inpaint,
    })))
    assert set(rows) == {"stereodiffusion", "refine", "warp_inpaint"}
    # Random tiny weights paint noise; what must hold is that the refine and the warp keep the
    # left eye's pixels wherever the right eye sees them.
    assert float(rows["warp_inpaint"][0]) > float(rows["stereodiffusion"][0])
    assert float(rows["refine"][0]) > float(rows["stereodiffusion"][0])
