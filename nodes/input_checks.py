"""Checks of the host's own types (LATENT, CONDITIONING, MODEL) at the top of a node: each bad
input is refused before any model runs, with a message that names the input.

Tensor checks that need no host live in stereo_ops.checks; these add what only the host knows
(a model's latent channels and text width, the host's empty-latent conversion).
"""

from __future__ import annotations

import contextlib

import comfy.sample
import torch

from ..stereo_ops.checks import check_finite, check_not_empty, check_tensor

VIDEO_LATENT_HINT = (
    "Video models (5-D latents) are not supported by stereo sampling: make the pair per frame with an "
    "image model, or warp the frames with Stereo Warp."
)


def latent_channels(model) -> int | None:
    fmt = getattr(getattr(model, "model", None), "latent_format", None)
    return getattr(fmt, "latent_channels", None)


def model_latent(model, latent, name: str, min_size: int = 1) -> torch.Tensor:
    """The samples of a LATENT for this model: (N, C, H, W), N >= 1, C the model's channels, finite.

    Checked at any denoise: even at denoise 1 the host adds the latent to the first noise, so a
    NaN in it reaches every step.
    """
    if not isinstance(latent, dict) or "samples" not in latent:
        raise TypeError(f"{name}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    samples = check_tensor(latent["samples"], name, "a LATENT")
    samples = comfy.sample.fix_empty_latent_channels(model, samples)
    if samples.ndim != 4:
        raise ValueError(
            f"{name} must be an image latent (batch, channels, height, width); got shape "
            f"{tuple(samples.shape)}. {VIDEO_LATENT_HINT}"
        )
    check_not_empty(samples, name, "latent (Empty Latent Image or VAE Encode)")
    want = latent_channels(model)
    if want is not None and samples.shape[1] != want:
        raise ValueError(
            f"{name} has {samples.shape[1]} channels but this model ({type(model.model).__name__}) works on "
            f"{want}-channel latents; encode the image with this model's VAE, or use the Empty Latent node "
            "made for this model"
        )
    if min(samples.shape[-2:]) < min_size:
        raise ValueError(
            f"{name} is {samples.shape[-1]}x{samples.shape[-2]} latent pixels; this node needs at least "
            f"{min_size}x{min_size} (an image of at least {8 * min_size}x{8 * min_size} pixels)"
        )
    return check_finite(samples, name)


def _context_width(model) -> int | None:
    config = getattr(getattr(getattr(model, "model", None), "model_config", None), "unet_config", None) or {}
    # A UNet with a text projection (Kolors' encoder_hid_proj) takes its encoder's width instead.
    width = config.get("encoder_hid_dim") or config.get("context_dim")
    return int(width) if isinstance(width, int) else None


def check_conditioning(conditioning, name: str, model=None, allow_empty: bool = False) -> list:
    """A CONDITIONING list: [[tensor (N, tokens, width), dict], ...], finite, with the model's text
    width where the model declares one (a UNet's context_dim)."""
    if not isinstance(conditioning, list):
        raise TypeError(f"{name}: expected a CONDITIONING (a list from a text encoder), got {type(conditioning).__name__}")
    if not conditioning and not allow_empty:
        raise ValueError(f"{name}: the conditioning is empty; connect a text encoder output (CLIP Text Encode)")
    width = _context_width(model) if model is not None else None
    for item in conditioning:
        if not (isinstance(item, (list, tuple)) and len(item) >= 2 and isinstance(item[0], torch.Tensor)
                and isinstance(item[1], dict)):
            raise TypeError(f"{name}: not a CONDITIONING (each entry must be [tensor, dict]); connect a text encoder output")
        check_finite(item[0], name)
        if width is not None and item[0].ndim == 3 and item[0].shape[-1] != width:
            raise ValueError(
                f"{name}: the text encoding is {item[0].shape[-1]} wide but this model "
                f"({type(model.model).__name__}) takes {width}; encode the prompt with the CLIP of the same "
                "checkpoint as the model"
            )
    return conditioning


def _entries(conditioning) -> list[dict]:
    if not isinstance(conditioning, list):
        return []
    return [c[1] for c in conditioning if isinstance(c, (list, tuple)) and len(c) > 1 and isinstance(c[1], dict)]


@contextlib.contextmanager
def conditioning_named(positive, negative):
    """Turn the host's KeyError for a conditioning entry that one conditioning lacks (the model's
    'pooled_output', which SDXL, SD3 and Flux need; or a key the other conditioning has) into an
    error naming which conditioning lacks it."""
    try:
        yield
    except KeyError as exc:
        key = exc.args[0] if exc.args else None
        entries = {"positive": _entries(positive), "negative": _entries(negative)}
        known = key == "pooled_output" or any(key in e for es in entries.values() for e in es)
        lacking = [name for name, es in entries.items() if any(key not in e for e in es)]
        if not isinstance(key, str) or not known or not lacking:
            raise
        raise ValueError(
            f"{lacking[0]}: the conditioning has no '{key}', which this model needs; encode the prompt with "
            "the CLIP of the same checkpoint as the model (SD1.5 text encodings do not fit SDXL, SD3 or Flux)"
        ) from None


# Room left in a file name of 255 bytes for the counter, the layout suffix and the extension.
MAX_PREFIX_NAME_BYTES = 200


def check_filename_prefix(prefix, name: str = "filename_prefix") -> str:
    """A save prefix that stays inside the output folder and makes names every file system takes:
    relative, no '..', no NUL, each part at most MAX_PREFIX_NAME_BYTES bytes."""
    if not isinstance(prefix, str):
        raise TypeError(f"{name}: expected text, got {type(prefix).__name__}")
    if "\x00" in prefix:
        raise ValueError(f"{name} contains a NUL character; remove it")
    parts = prefix.replace("\\", "/").split("/")
    if prefix.startswith(("/", "\\")) or (len(prefix) > 1 and prefix[1] == ":"):
        raise ValueError(
            f"{name} {prefix[:60]!r} is an absolute path; files are saved inside ComfyUI's output folder, so "
            "give a relative prefix such as 'stereo/photo' (a subfolder is created)"
        )
    if ".." in parts:
        raise ValueError(
            f"{name} {prefix[:60]!r} climbs out of the output folder with '..'; give a prefix inside it, such "
            "as 'stereo/photo'"
        )
    longest = max(parts, key=lambda p: len(p.encode("utf-8")))
    if len(longest.encode("utf-8")) > MAX_PREFIX_NAME_BYTES:
        raise ValueError(
            f"{name} has a part of {len(longest.encode('utf-8'))} bytes; file names are limited to 255 bytes "
            f"with the counter and layout suffix, so keep each part under {MAX_PREFIX_NAME_BYTES}"
        )
    return prefix
