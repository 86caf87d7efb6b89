"""Self-attention sharing between the two eyes of a stereo batch.

The tensors here are the inputs of a self-attention layer, (B, T, D): the hidden states that
become the keys and the values. B is made of `chunks` equal chunks (one per conditioning the
host batched together: cond, uncond, ...), and every chunk is a stereo batch of 2N: N lefts,
then N rights.

* unidirectional: the right image of pair j attends to the left image's keys and values only
  (the reference implementation); the left images are untouched.
* bidirectional: both images of a pair attend to the tokens of both, concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Literal

import torch

AttentionMode = Literal["unidirectional", "bidirectional"]
# Transformer options through which a stereo sampler tells attention patches what it is running:
# a joint batch of N stereo pairs, or one eye's half of a split evaluation. Attention sharing acts
# only when one is present, so a plain sampler run is never paired up.
STEREO_PAIRS_OPTION = "stereo_pairs"
STEREO_PASS_OPTION = "stereo_pass"
# Set on a model by a patch that needs both eyes in one batch (bidirectional attention).
STEREO_JOINT_OPTION = "stereo_joint_batch"
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
