"""Inversions of a clip cut into chunks of frames and joined again. Every inverted photo is its own
(its start latent, its row of the per-step contexts, its first prediction), so the inversion of a
clip is the inversions of its chunks, frame by frame."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .inversion import StereoInversion


def _frame_rows(t, rows: slice, n: int):
    return t[rows] if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == n and n > 1 else t


def inversion_rows(inversion: StereoInversion, rows: slice) -> StereoInversion:
    """The inversion of the frames `rows` of an inverted clip."""
    n = inversion.start_latent.shape[0]
    unconds = inversion.uncond_embeddings
    fingerprint = inversion.source_fingerprint
    return dataclasses.replace(
        inversion,
        start_latent=inversion.start_latent[rows],
        uncond_embeddings=None if unconds is None else tuple(_frame_rows(u, rows, n) for u in unconds),
        first_prediction=_frame_rows(inversion.first_prediction, rows, n),
        source_fingerprint=None if fingerprint is None else fingerprint[rows],
    )


def _rows_of(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.expand(n, *t.shape[1:]) if t.shape[0] == 1 and n > 1 else t


def join_inversions(parts: Sequence[StereoInversion]) -> StereoInversion:
    """One inversion of all frames of `parts` (consecutive chunks of one clip), in order."""
    if not parts:
        raise ValueError("no inversion to join")
    first = parts[0]
    for part in parts[1:]:
        if part.method != first.method or part.cfg != first.cfg or part.model_signature != first.model_signature \
                or not torch.equal(part.sigmas, first.sigmas):
            raise ValueError("the inversions to join were made with different settings or models")
    if len(parts) == 1:
        return first
    sizes = [p.start_latent.shape[0] for p in parts]
    unconds = None
    if first.uncond_embeddings is not None:
        unconds = tuple(
            torch.cat([_rows_of(p.uncond_embeddings[i], k) for p, k in zip(parts, sizes)])
            for i in range(len(first.uncond_embeddings))
        )
    predictions = [p.first_prediction for p in parts]
    fingerprints = [p.source_fingerprint for p in parts]
    return dataclasses.replace(
        first,
        start_latent=torch.cat([p.start_latent for p in parts]),
        uncond_embeddings=unconds,
        first_prediction=None if any(p is None for p in predictions) else torch.cat(predictions),
        source_fingerprint=None if any(f is None for f in fingerprints) else torch.cat(fingerprints),
    )
