"""Frame nodes in chunks: the same results whatever the chunk, and memory that does not grow with the clip."""

import pytest
import torch

from stereo_pack.stereo_ops.depth_map import depth_map_to_disparity
from stereo_pack.stereo_ops.disparity import normalize_in_place, normalize_per_sample, normalize_whole_batch
from stereo_pack.stereo_ops.frame_chunks import chunk_length, frame_chunks, scene_slices
from stereo_pack.stereo_ops.temporal import smooth_backward, smooth_forward, smooth_over_time
from stereo_pack.stereo_ops.warp_clip import refine_clip, warp_clip


def _frames(n=7, h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, h, w, 3), generator=g), torch.rand((n, h, w), generator=g)


def test_chunks_cover_the_clip_and_never_cross_a_scene_start():
    parts = list(frame_chunks(10, 3, starts=[4, 9]))
    assert [(p.start, p.stop) for p in parts] == [(0, 3), (3, 4), (4, 7), (7, 9), (9, 10)]
    assert scene_slices(10, [4, 0, 12]) == [slice(0, 4), slice(4, 10)]
    assert chunk_length(10**9) == 1
    with pytest.raises(ValueError, match="chunk length"):
        list(frame_chunks(3, 0))


@pytest.mark.parametrize("balance", [0.0, 0.5])
def test_warp_in_chunks_equals_the_whole_clip(balance):
    frames, disparity = _frames()
    whole = warp_clip(frames, disparity, 6.0, 0.2, balance, grow_holes=1, chunk=100)
    for chunk in (1, 3):
        parts = warp_clip(frames, disparity, 6.0, 0.2, balance, grow_holes=1, chunk=chunk)
        assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1])
    one_map = warp_clip(frames, disparity[:1], 6.0, chunk=2)
    assert torch.equal(one_map[0], warp_clip(frames, disparity[:1].expand(7, -1, -1), 6.0, chunk=100)[0])


def test_refine_in_chunks_equals_the_whole_clip():
    frames, disparity = _frames(seed=1)
    right = torch.rand_like(frames)
    whole = refine_clip(frames, right, disparity, 6.0, chunk=100)
    parts = refine_clip(frames, right, disparity, 6.0, chunk=2)
    assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1])
    assert torch.equal(parts[0][:7], frames)


def test_warp_clip_refuses_bad_disparity_naming_the_input():
    frames, disparity = _frames(n=3)
    with pytest.raises(ValueError, match="^disparity has values"):
        warp_clip(frames, disparity * 2, 6.0)
    with pytest.raises(ValueError, match="^disparity has 2 maps for 3"):
        warp_clip(frames, disparity[:2], 6.0)
    bad = disparity.clone()
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="^disparity contains NaN"):
        warp_clip(frames, bad, 6.0)


def test_smoothing_in_chunks_carries_its_state_exactly():
    maps = torch.rand(9, 5, 6)
    whole = smooth_over_time(maps, 0.7)
    out = maps.clone()
    state = None
    for part in frame_chunks(9, 2):
        state = smooth_forward(out[part], 0.7, state)
    state = None
    for part in reversed(list(frame_chunks(9, 4))):
        state = smooth_backward(out[part], 0.7, state)
    assert torch.equal(out, whole)


def test_in_place_normalisation_matches_the_copying_one_and_restarts_at_scene_starts():
    d = torch.rand(6, 4, 5) * 3 - 1
    torch.testing.assert_close(normalize_in_place(d.clone(), False), normalize_per_sample(d), rtol=0, atol=1e-6)
    torch.testing.assert_close(normalize_in_place(d.clone(), True, chunk=2), normalize_whole_batch(d), rtol=0, atol=1e-6)
    split = normalize_in_place(d.clone(), True, starts=[4], chunk=3)
    assert torch.equal(split[4:], normalize_in_place(d[4:].clone(), True, chunk=3))
    assert torch.equal(split[:4], normalize_in_place(d[:4].clone(), True, chunk=3))


def test_depth_to_disparity_after_a_cut_is_the_clip_started_there():
    depth = torch.rand(8, 12, 16, 3)
    kwargs = dict(normalization="per batch", temporal_smoothing=0.6, gamma=1.3, blur_sigma=1.0)
    cut = depth_map_to_disparity(depth, scene_starts=[5], **kwargs)
    assert torch.equal(cut[5:], depth_map_to_disparity(depth[5:], **kwargs))
    assert torch.equal(cut[:5], depth_map_to_disparity(depth[:5], **kwargs))
    assert not torch.equal(cut, depth_map_to_disparity(depth, **kwargs))


def test_extra_memory_of_the_frame_chain_does_not_grow_with_the_clip():
    """Depth -> disparity -> warp over 20 and 200 frames, each in a fresh process, with a 2 MiB chunk:
    the memory beyond the results stays that of a chunk (the chain that kept whole-clip copies
    needed about 4 times the 28 MiB clip beyond its results)."""
    from bench.bench_video_memory import run_fresh

    short = run_fresh(20, 128, 96, chunk_mib=2)
    long = run_fresh(200, 128, 96, chunk_mib=2)
    assert long["results_mib"] > 9 * short["results_mib"]  # the results do scale with the clip
    assert long["extra_mib"] < short["extra_mib"] + 8, (short, long)
