"""Stereo attention over joint text+image sequences (the DiT path of stereo_ops.attention)."""

import pytest
import torch
import torch.nn.functional as F

from stereo_pack.stereo_ops.attention import (
    StereoPass,
    image_window,
    joint_stereo_attention,
    recall_kv,
    record_kv,
    right_pass_attention,
)

TEXT, IMAGE, EXTRA, HEADS, DIM = 3, 6, 2, 2, 4
WINDOW = (TEXT, TEXT + IMAGE)


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def qkv(rows, seed=0, tokens=TEXT + IMAGE + EXTRA):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, HEADS, tokens, DIM, generator=g, dtype=torch.float64) for _ in range(3)]


def one_row(q, k, v, row, keys):
    """Reference: the image queries of `row` against an explicit list of (row, token slice) keys."""
    kk = torch.cat([k[r : r + 1, :, sl] for r, sl in keys], dim=-2)
    vv = torch.cat([v[r : r + 1, :, sl] for r, sl in keys], dim=-2)
    return sdpa(q[row : row + 1, :, slice(*WINDOW)], kk, vv, None)[0]


def test_image_window_finds_the_image_tokens():
    assert image_window(TEXT + IMAGE, TEXT, IMAGE) == WINDOW
    assert image_window(TEXT + IMAGE + EXTRA, TEXT, IMAGE) == WINDOW  # reference tokens after the image
    assert image_window(IMAGE, TEXT, IMAGE) == (0, IMAGE)  # an image-only attention
    assert image_window(TEXT + IMAGE - 1, TEXT, IMAGE) is None  # not a sequence of this layout


@pytest.mark.parametrize("chunks,pairs", [(1, 1), (2, 1), (2, 3)])
def test_unidirectional_right_image_queries_see_own_text_and_left_image(chunks, pairs):
    q, k, v = qkv(chunks * 2 * pairs)
    out = joint_stereo_attention(sdpa, q, k, v, None, WINDOW, "unidirectional", chunks, pairs)
    plain = sdpa(q, k, v, None)
    text, extra, image = slice(0, TEXT), slice(TEXT + IMAGE, None), slice(*WINDOW)
    for c in range(chunks):
        for j in range(pairs):
            left, right = c * 2 * pairs + j, c * 2 * pairs + pairs + j
            torch.testing.assert_close(out[left], plain[left])  # the left is untouched
            want = one_row(q, k, v, right, [(right, text), (left, image), (right, extra)])
            torch.testing.assert_close(out[right, :, image], want)
            # text and reference queries keep their own sequence
            torch.testing.assert_close(out[right, :, text], plain[right, :, text])
            torch.testing.assert_close(out[right, :, extra], plain[right, :, extra])


@pytest.mark.parametrize("chunks,pairs", [(1, 1), (2, 2)])
def test_bidirectional_image_queries_see_both_whole_sequences(chunks, pairs):
    q, k, v = qkv(chunks * 2 * pairs, seed=1)
    out = joint_stereo_attention(sdpa, q, k, v, None, WINDOW, "bidirectional", chunks, pairs)
    plain = sdpa(q, k, v, None)
    everything = slice(None)
    for c in range(chunks):
        for j in range(pairs):
            left, right = c * 2 * pairs + j, c * 2 * pairs + pairs + j
            for row in (left, right):
                want = one_row(q, k, v, row, [(left, everything), (right, everything)])
                torch.testing.assert_close(out[row, :, slice(*WINDOW)], want)
                torch.testing.assert_close(out[row, :, :TEXT], plain[row, :, :TEXT])


def test_identical_eyes_attend_as_one_image_in_both_modes():
    q, k, v = qkv(1, seed=2)
    q, k, v = (t.repeat(2, 1, 1, 1) for t in (q, k, v))
    plain = sdpa(q, k, v, None)
    for mode in ("unidirectional", "bidirectional"):
        out = joint_stereo_attention(sdpa, q, k, v, None, WINDOW, mode, 1, 1)
        torch.testing.assert_close(out, plain)


def test_right_pass_with_recorded_left_keys_equals_the_joint_batch():
    q, k, v = qkv(4, seed=3)  # two chunks (cond, uncond) of one pair
    joint = joint_stereo_attention(sdpa, q, k, v, None, WINDOW, "unidirectional", 2, 1)
    left_rows, right_rows = [0, 2], [1, 3]
    left = StereoPass("left")
    layer = left.next_call(["c", "u"])
    record_kv(left.store, layer, ["c", "u"], k[left_rows][..., slice(*WINDOW), :], v[left_rows][..., slice(*WINDOW), :])
    right = StereoPass("right", store=left.store)
    left_k, left_v = recall_kv(right.store, right.next_call(["c", "u"]), ["c", "u"])
    out = right_pass_attention(sdpa, q[right_rows], k[right_rows], v[right_rows], None, WINDOW, left_k, left_v)
    torch.testing.assert_close(out, joint[right_rows])


def test_layer_counters_are_per_chunk_and_per_pass():
    p = StereoPass("left")
    assert [p.next_call(["c", "u"]) for _ in range(3)] == [0, 1, 2]
    assert p.next_call(["x"]) == 0  # a chunk evaluated in a call of its own counts its own layers
    assert StereoPass("right", store=p.store).next_call(["c", "u"]) == 0


def test_masks_follow_the_queries_and_the_shared_keys():
    q, k, v = qkv(2, seed=4)
    tokens = q.shape[-2]
    mask = torch.zeros(2, 1, tokens, tokens, dtype=torch.float64)
    mask[..., 0] = -1e9  # nobody may attend to the first text token
    for mode in ("unidirectional", "bidirectional"):
        out = joint_stereo_attention(sdpa, q, k, v, mask, WINDOW, mode, 1, 1)
        k2, v2 = k.clone(), v.clone()
        v2[..., 0, :] = 1e6  # a masked value must not leak into any output
        out2 = joint_stereo_attention(sdpa, q, k2, v2, mask, WINDOW, mode, 1, 1)
        torch.testing.assert_close(out, out2)


def test_not_a_stereo_batch_is_refused():
    q, k, v = qkv(3)
    with pytest.raises(ValueError, match="not a stereo batch"):
        joint_stereo_attention(sdpa, q, k, v, None, WINDOW, "bidirectional", 1, 1)
