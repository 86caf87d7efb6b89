"""Self-attention sharing between the two eyes of a stereo batch.

The tensors here are the inputs of a self-attention layer, (B, T, D): the hidden states that
become the keys and the values. B is made of `chunks` equal chunks (one per conditioning the
host batched together: cond, uncond, ...), and every chunk is a stereo batch of 2N: N lefts,
then N rights.

* unidirectional: the right image of pair j attends to the left image's keys and values only
  (the reference implementation); the left images are untouched.
* bidirectional: both images of a pair attend to the tokens of both, concatenated.

Joint text+image attention (the DiTs: Flux double and single blocks, SD3's MMDiT) runs one
attention over a sequence that holds text tokens and each image's tokens. There, only the image
queries are paired up: they see the text tokens as before plus the shared image tokens, while the
text queries keep attending to their own sequence. `image_window` finds the image tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Literal

import torch

AttentionMode = Literal["unidirectional", "bidirectional"]
ATTENTION_MODES: tuple[str, ...] = ("unidirectional", "bidirectional")


def _as_pairs(t: torch.Tensor, chunks: int, pairs: int) -> torch.Tensor:
    """(chunks * 2 * pairs, T, D) -> (chunks, 2, pairs, T, D)."""
    if chunks < 1 or pairs < 1 or t.shape[0] != chunks * 2 * pairs:
        raise ValueError(
            f"attention batch of {t.shape[0]} does not split into {chunks} conditioning chunk(s) "
            f"of {pairs} stereo pair(s); the batch is not a stereo batch"
        )
    return t.reshape(chunks, 2, pairs, *t.shape[1:])


def unidirectional_kv(context: torch.Tensor, chunks: int, pairs: int) -> torch.Tensor:
    """Keys/values source where every right image sees its left image's tokens instead of its own."""
    p = _as_pairs(context, chunks, pairs)
    return torch.stack([p[:, 0], p[:, 0]], dim=1).reshape(context.shape)


def bidirectional_kv(context: torch.Tensor, chunks: int, pairs: int) -> torch.Tensor:
    """Keys/values source (B, 2T, D) where both images of a pair see the tokens of both."""
    p = _as_pairs(context, chunks, pairs)
    joint = torch.cat([p[:, 0], p[:, 1]], dim=-2)  # (chunks, pairs, 2T, D)
    both = torch.stack([joint, joint], dim=1)  # (chunks, 2, pairs, 2T, D)
    return both.reshape(context.shape[0], 2 * context.shape[1], *context.shape[2:])


def share_kv(context: torch.Tensor, mode: AttentionMode, chunks: int, pairs: int) -> torch.Tensor:
    if mode == "unidirectional":
        return unidirectional_kv(context, chunks, pairs)
    if mode == "bidirectional":
        return bidirectional_kv(context, chunks, pairs)
    raise ValueError(f"unknown attention mode {mode!r}; choose one of {', '.join(ATTENTION_MODES)}")


@dataclass
class StereoPass:
    """One eye's half of a split model evaluation (the left first, then the right).

    Evaluating the eyes as two batches keeps the left views bit-identical to a plain sampler run:
    a batched kernel may round differently for another batch size. The unidirectional patch
    records the left pass's key/value sources in `store` and hands them to the right pass.
    """

    role: Literal["left", "right"]
    store: dict = field(default_factory=dict)
    # Attention calls seen so far in this pass, per conditioning chunk: the n-th call of the right
    # pass is the same layer as the n-th call of the left pass, for models that name no layers.
    calls: dict = field(default_factory=dict)

    def next_call(self, chunk_ids: list) -> int:
        index = max((self.calls.get(cid, 0) for cid in chunk_ids), default=0)
        for cid in chunk_ids:
            self.calls[cid] = index + 1
        return index


def record_kv(store: dict, layer: Hashable, chunk_ids: list, context: torch.Tensor, value: torch.Tensor) -> None:
    """Keep each conditioning chunk's key/value source of one layer, from the left pass."""
    chunks = len(chunk_ids)
    for cid, c, v in zip(chunk_ids, context.chunk(chunks), value.chunk(chunks)):
        store[(layer, cid)] = (c, v)


def recall_kv(store: dict, layer: Hashable, chunk_ids: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The left pass's key/value sources for the right pass's chunks of the same layer."""
    try:
        pairs = [store[(layer, cid)] for cid in chunk_ids]
    except KeyError as exc:
        raise RuntimeError(
            f"stereo attention: no left-eye keys recorded for layer {layer}; the right pass must follow "
            "a left pass of the same model call"
        ) from exc
    return torch.cat([c for c, _ in pairs]), torch.cat([v for _, v in pairs])


# ---------------------------------------------------------------------------------------------
# Joint text+image attention (DiTs)

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""(q, k, v, mask) -> attention output; tokens on dim -2 of q, k, v and of the output."""


def image_window(length: int, text_tokens: int, image_tokens: int) -> tuple[int, int] | None:
    """Where one image's tokens sit in an attention sequence of `length` tokens, or None.

    The DiTs order a joint sequence text first, then the image, then any reference-image tokens
    (Flux Kontext); an attention over the image alone (SD3.5's extra self-attention) is all image.
    """
    if image_tokens < 1:
        return None
    if length == image_tokens:
        return 0, image_tokens
    if text_tokens >= 0 and length >= text_tokens + image_tokens:
        return text_tokens, text_tokens + image_tokens
    return None


def _without(t: torch.Tensor, start: int, stop: int, dim: int) -> torch.Tensor:
    return torch.cat([t.narrow(dim, 0, start), t.narrow(dim, stop, t.shape[dim] - stop)], dim=dim)


def _mask_rows(mask: torch.Tensor | None, length: int, start: int, stop: int, inside: bool):
    if mask is None or mask.ndim < 2 or mask.shape[-2] != length:
        return mask
    return mask[..., start:stop, :] if inside else _without(mask, start, stop, -2)


def _attend_split(
    attend: Attend, q, k, v, mask, window: tuple[int, int], k_image, v_image, mask_image
) -> torch.Tensor:
    """Image queries against (k_image, v_image); the other queries against their own k, v."""
    start, stop = window
    length = q.shape[-2]
    out_image = attend(q[..., start:stop, :], k_image, v_image, _mask_rows(mask_image, length, start, stop, True))
    if start == 0 and stop == length:
        return out_image
    out_other = attend(_without(q, start, stop, -2), k, v, _mask_rows(mask, length, start, stop, False))
    return torch.cat([out_other[..., :start, :], out_image, out_other[..., start:, :]], dim=-2)


def _replace_window(t: torch.Tensor, window: tuple[int, int], image: torch.Tensor) -> torch.Tensor:
    start, stop = window
    return torch.cat([t[..., :start, :], image, t[..., stop:, :]], dim=-2)


def joint_stereo_attention(
    attend: Attend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    window: tuple[int, int],
    mode: AttentionMode,
    chunks: int,
    pairs: int,
) -> torch.Tensor:
    """Stereo attention over a joint batch (chunks x 2N rows, tokens on dim -2).

    unidirectional: the right image's image queries see its left image's image keys/values in
    place of its own, next to its own text tokens. bidirectional: both images' image queries see
    the whole sequences of both images (each image's text and image tokens), so that a pair of
    identical images attends exactly as one image alone. Text queries keep their own sequence.
    """
    start, stop = window
    k_win, v_win = k[..., start:stop, :], v[..., start:stop, :]
    if mode == "unidirectional":
        k_image = _replace_window(k, window, _share_rows(unidirectional_kv, k_win, chunks, pairs))
        v_image = _replace_window(v, window, _share_rows(unidirectional_kv, v_win, chunks, pairs))
        mask_image = mask
    elif mode == "bidirectional":
        k_image = _share_rows(bidirectional_kv, k, chunks, pairs)
        v_image = _share_rows(bidirectional_kv, v, chunks, pairs)
        mask_image = None if mask is None else torch.cat([mask, mask], dim=-1)
    else:
        raise ValueError(f"unknown attention mode {mode!r}; choose one of {', '.join(ATTENTION_MODES)}")
    return _attend_split(attend, q, k, v, mask, window, k_image, v_image, mask_image)


def _share_rows(share, t: torch.Tensor, chunks: int, pairs: int) -> torch.Tensor:
    """Apply a sharing function of (B, T, D) tensors to (B, T, D) or per-head (B, H, T, d) tokens."""
    if t.ndim == 3:
        return share(t, chunks, pairs)
    b, h, tokens, d = t.shape
    shared = share(t.transpose(1, 2).reshape(b, tokens, h * d), chunks, pairs)
    return shared.reshape(b, shared.shape[1], h, d).transpose(1, 2)


def right_pass_attention(
    attend: Attend,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    window: tuple[int, int],
    left_k: torch.Tensor,
    left_v: torch.Tensor,
) -> torch.Tensor:
    """Unidirectional attention of the right eye's pass, given its left pass's image keys/values."""
    k_image = _replace_window(k, window, left_k.to(k))
    v_image = _replace_window(v, window, left_v.to(v))
    return _attend_split(attend, q, k, v, mask, window, k_image, v_image, mask)
