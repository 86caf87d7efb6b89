"""Settings that cannot work together, found in an API prompt before any model runs.

The Stereo KSampler refuses an inversion made with other steps, cfg or latent size, but only once
the inversion has run, which on a CPU can be many minutes in. Everything compared here is a
widget value or a size that can be read from the prompt itself (and the input images' headers),
so the runner can stop at once with the same advice. Anything that cannot be read statically is
left to the nodes. This module imports nothing from the host.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

SAMPLER = "StereoKSampler"
INVERSION = "StereoNullTextInversion"
# Latent sources whose pixel size is their own width and height widgets.
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo")
LATENT_SCALE = 8  # every image model the pack targets; both sides of a comparison use the same one

ImageSize = Callable[[str], "tuple[int, int] | None"]  # input image name -> (width, height)


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def node_label(prompt: dict, node_id: str, display_names: dict | None = None) -> str:
    """'Stereo KSampler (node 12)': the name the user sees on the node, and its id."""
    node = prompt[node_id]
    title = node.get("_meta", {}).get("title")
    if not title or title == node["class_type"]:
        title = (display_names or {}).get(node["class_type"], node["class_type"])
    return f"{title} (node {node_id})"


def image_pixels(prompt: dict, link, image_size: ImageSize | None) -> tuple[int, int] | None:
    """(width, height) of the IMAGE at `link`, when it can be told without running anything."""
    if not _is_link(link) or link[0] not in prompt:
        return None
    node = prompt[link[0]]
    inputs = node["inputs"]
    kind = node["class_type"]
    if kind == "LoadImage" and image_size is not None and isinstance(inputs.get("image"), str):
        return image_size(inputs["image"])
    if kind == "ImageScale" and isinstance(inputs.get("width"), int) and isinstance(inputs.get("height"), int):
        width, height = inputs["width"], inputs["height"]
        if width and height:
            return width, height
        source = image_pixels(prompt, inputs.get("image"), image_size)
        if source is None or (width == 0 and height == 0):
            return source
        # ImageScale keeps the aspect ratio when one side is 0.
        if width == 0:
            return max(1, round(source[0] * height / source[1])), height
        return width, max(1, round(source[1] * width / source[0]))
    return None


def latent_pixels(prompt: dict, link, image_size: ImageSize | None) -> tuple[int, int] | None:
    """(width, height) in pixels, rounded down to the latent grid, of the LATENT at `link`."""
    if not _is_link(link) or link[0] not in prompt:
        return None
    node = prompt[link[0]]
    inputs = node["inputs"]
    if node["class_type"] in EMPTY_LATENTS:
        width, height = inputs.get("width"), inputs.get("height")
        if isinstance(width, int) and isinstance(height, int):
            return _on_grid(width, height)
        return None
    if node["class_type"] == "VAEEncode":
        size = image_pixels(prompt, inputs.get("pixels"), image_size)
        return None if size is None else _on_grid(*size)
    return None


def _on_grid(width: int, height: int) -> tuple[int, int]:
    return width // LATENT_SCALE * LATENT_SCALE, height // LATENT_SCALE * LATENT_SCALE


def _same_number(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return True  # a link or an odd value: the node decides
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)


def inversion_problems(
    prompt: dict,
    image_size: ImageSize | None = None,
    display_names: dict | None = None,
    inversion_samplers: Iterable[str] | None = None,
) -> list[str]:
    """One message per setting of a Stereo KSampler that does not fit the inversion it is given."""
    problems = []
    for sampler_id, sampler in sorted(prompt.items()):
        link = sampler["inputs"].get("inversion")
        if sampler["class_type"] != SAMPLER or not _is_link(link) or prompt.get(link[0], {}).get("class_type") != INVERSION:
            continue
        inversion_id = link[0]
        s, i = sampler["inputs"], prompt[inversion_id]["inputs"]
        who = node_label(prompt, sampler_id, display_names)
        inv = node_label(prompt, inversion_id, display_names)
        for name in ("steps", "cfg"):
            if not _same_number(s.get(name), i.get(name)):
                problems.append(
                    f"{who} has {name} {s[name]} but {inv} uses {name} {i[name]}; they must match: "
                    f"--set {sampler_id}.{name}={i[name]} or --set {inversion_id}.{name}={s[name]}"
                )
        samplers = tuple(inversion_samplers or ())
        name = s.get("sampler_name")
        if samplers and isinstance(name, str) and name not in samplers:
            problems.append(
                f"{who} has sampler_name {name}, which cannot retrace the inversion of {inv}; use "
                f"{' or '.join(samplers)}: --set {sampler_id}.sampler_name={samplers[0]}"
            )
        if s.get("latent_image") != i.get("latent"):
            mine = latent_pixels(prompt, s.get("latent_image"), image_size)
            theirs = latent_pixels(prompt, i.get("latent"), image_size)
            if mine is not None and theirs is not None and mine != theirs:
                problems.append(
                    f"{who} gets a {mine[0]}x{mine[1]} latent_image but {inv} inverts a {theirs[0]}x{theirs[1]} one; "
                    "give the sampler the same encoded photo as the inversion"
                )
    return problems
