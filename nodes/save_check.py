"""Stereo Check figures for Stereo Save Image: into each PNG (text chunk `stereo_check`, JSON) and
into the viewer (ui key `stereo_check`: the verdict and parallax range of each pair)."""

from __future__ import annotations

import json

import torch
from PIL.PngImagePlugin import PngInfo

from .check import MIN_SIZE, budget_of, check_pairs

PNG_KEY = "stereo_check"


def pair_figures(
    left: torch.Tensor, right: torch.Tensor, check: bool, figures: str | None, display=None
) -> list[dict] | None:
    """One figures object per pair: from Stereo Check's `figures` output when connected, else measured
    here (about a second per pair at most, on one thread) when `check` is on, against the display
    target's budget when one is connected, else None."""
    pairs = left.shape[0]
    if figures is not None and figures.strip():
        try:
            parsed = json.loads(figures)
        except json.JSONDecodeError as exc:
            raise ValueError(f"check_figures is not JSON ({exc.msg}); connect Stereo Check's figures output") from exc
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list) or len(parsed) != pairs or not all(isinstance(p, dict) for p in parsed):
            raise ValueError(
                f"check_figures must be Stereo Check's figures for the same {pairs} pair(s): a JSON list of "
                f"{pairs} object(s)"
            )
        return parsed
    if not check or min(left.shape[1:3]) < MIN_SIZE:  # too small to match: nothing to write
        return None
    budget, name = budget_of(display)
    return [c.figures.as_dict() for _, c in check_pairs(left, right, budget, name)]


def frame_metadata(metadata: PngInfo | None, figures: list[dict] | None) -> list[PngInfo | None] | PngInfo | None:
    """The PNG metadata of each frame: the shared prompt and workflow chunks, plus the pair's figures.
    With metadata disabled in the host (no prompt in files), no figures are written either."""
    if metadata is None or figures is None:
        return metadata
    frames = []
    for f in figures:
        info = PngInfo()
        for chunk_type, data, after_idat in metadata.chunks:
            info.add(chunk_type, data, after_idat)
        info.add_text(PNG_KEY, json.dumps(f))
        frames.append(info)
    return frames


def viewer_summary(figures: list[dict] | None) -> list[dict]:
    """What the in-node viewer shows for each pair."""
    if figures is None:
        return []
    out = []
    for f in figures:
        p = f.get("parallax_pct", {})
        out.append({
            "verdict": f.get("verdict", "pass" if not f.get("warnings") else "warn"),
            "warnings": list(f.get("warnings", [])),
            "min_pct": p.get("min"),
            "max_pct": p.get("max"),
            "display": f.get("budget", {}).get("display"),
        })
    return out
