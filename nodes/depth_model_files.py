"""Depth model files: the `depthanything` and `midas` model folders, known public files, download."""

from __future__ import annotations

import logging
import os
import re
import urllib.request
from dataclasses import dataclass

import folder_paths

LOG = logging.getLogger("StereoDiffusion")

FOLDERS = ("depthanything", "midas")
EXTENSIONS = {".pth", ".pt", ".safetensors", ".bin"}


@dataclass(frozen=True)
class KnownFile:
    folder: str
    filename: str
    url: str
    license: str


_HF = "https://huggingface.co"
_MIDAS = "https://github.com/isl-org/MiDaS/releases/download"
KNOWN_FILES = (
    KnownFile("depthanything", "depth_anything_v2_vits.pth",
              f"{_HF}/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth", "Apache-2.0"),
    KnownFile("depthanything", "depth_anything_v2_vitb.pth",
              f"{_HF}/depth-anything/Depth-Anything-V2-Base/resolve/main/depth_anything_v2_vitb.pth", "CC-BY-NC-4.0"),
    KnownFile("depthanything", "depth_anything_v2_vitl.pth",
              f"{_HF}/depth-anything/Depth-Anything-V2-Large/resolve/main/depth_anything_v2_vitl.pth", "CC-BY-NC-4.0"),
    *(KnownFile("depthanything", f"depth_anything_vit{s}14.pth",
                f"{_HF}/spaces/LiheYoung/Depth-Anything/resolve/main/checkpoints/depth_anything_vit{s}14.pth",
                "Apache-2.0") for s in "sbl"),
    # Depth Anything 3: every repository publishes its weights as model.safetensors, so each keeps
    # its official name in a subfolder named after the repository.
    *(KnownFile("depthanything", f"{repo}/model.safetensors",
                f"{_HF}/depth-anything/{repo}/resolve/main/model.safetensors", "Apache-2.0")
      for repo in ("DA3MONO-LARGE", "DA3METRIC-LARGE", "DA3-BASE", "DA3-SMALL")),
    # Video Depth Anything: Small is Apache-2.0, Base and Large CC-BY-NC-4.0 (official README).
    *(KnownFile("depthanything", f"{prefix}video_depth_anything_vit{s}.pth",
                f"{_HF}/depth-anything/{repo}-{size}/resolve/main/{prefix}video_depth_anything_vit{s}.pth",
                "Apache-2.0" if s == "s" else "CC-BY-NC-4.0")
      for prefix, repo in (("", "Video-Depth-Anything"), ("metric_", "Metric-Video-Depth-Anything"))
      for s, size in (("s", "Small"), ("b", "Base"), ("l", "Large"))),
    KnownFile("midas", "dpt_large_384.pt", f"{_MIDAS}/v3/dpt_large_384.pt", "MIT"),
    KnownFile("midas", "dpt_hybrid_384.pt", f"{_MIDAS}/v3/dpt_hybrid_384.pt", "MIT"),
    KnownFile("midas", "dpt_beit_large_512.pt", f"{_MIDAS}/v3_1/dpt_beit_large_512.pt", "MIT"),
)


NON_COMMERCIAL = ("CC-BY-NC-4.0",)


def known_file(choice: str) -> KnownFile | None:
    """The official file a 'folder/file' choice names, if any; a copy in a subfolder is recognised
    by its file name where that name is unique among the official files."""
    choice = choice.replace("\\", "/")
    exact = next((k for k in KNOWN_FILES if f"{k.folder}/{k.filename}" == choice), None)
    if exact is not None:
        return exact
    name = choice.rsplit("/", 1)[-1]
    same = [k for k in KNOWN_FILES if k.filename.rsplit("/", 1)[-1] == name]
    return same[0] if len(same) == 1 else None


def licence_note(choice: str) -> str | None:
    """A warning for official files whose licence forbids commercial use; None otherwise."""
    known = known_file(choice)
    if known is None or known.license not in NON_COMMERCIAL:
        return None
    return (f"{known.filename} is licensed {known.license}: non-commercial use only. The Small models "
            "(Apache-2.0) can be used commercially.")


def non_commercial_files() -> list[str]:
    return [k.filename for k in KNOWN_FILES if k.license in NON_COMMERCIAL]


def register_model_folders() -> None:
    """Add models/depthanything and models/midas (paths from extra_model_paths.yaml are kept)."""
    for name in FOLDERS:
        default = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            paths, exts = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            folder_paths.folder_names_and_paths[name] = (paths, set(exts) | EXTENSIONS)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], set(EXTENSIONS))


# An entry of the model list that is not a file: it separates the files that are present from the
# official ones that would be downloaded. The file entries keep their plain 'folder/file' names,
# so a saved workflow that names an official file loads whether or not the file is there yet.
DOWNLOAD_LABEL = "── not downloaded yet (fetched on first run) ──"


def model_choices() -> list[str]:
    """'folder/file' for every file found, then a label, then the official files not yet present."""
    # Subfolder names use "/" on every OS, so a file found in DA3MONO-LARGE/ matches its known entry.
    found = [
        f"{folder}/{name.replace(os.sep, '/')}" for folder in FOLDERS for name in folder_paths.get_filename_list(folder)
    ]
    missing = [f"{k.folder}/{k.filename}" for k in KNOWN_FILES if f"{k.folder}/{k.filename}" not in found]
    return found + ([DOWNLOAD_LABEL, *missing] if missing else [])


def default_choice(choices: list[str]) -> str | None:
    """The first file of the list (a present one if any): never the label."""
    return next((c for c in choices if c != DOWNLOAD_LABEL), None)


def _split_choice(choice: str) -> tuple[str, str]:
    if choice == DOWNLOAD_LABEL:
        raise ValueError(
            "model_name: the chosen entry is the label that separates the files you have from the "
            "official ones that are downloaded on first run; choose a file above or below it"
        )
    folder, _, name = choice.partition("/")
    if folder not in FOLDERS or not name:
        raise ValueError(f"model_name {choice!r} must be 'depthanything/<file>' or 'midas/<file>'")
    return folder, name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download(known: KnownFile, folder_dir: str) -> str:
    target = os.path.join(folder_dir, *known.filename.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".part"
    LOG.info("[StereoDiffusion] downloading %s (%s licence) to %s", known.url, known.license, target)
    if known.license in NON_COMMERCIAL:
        LOG.warning("[StereoDiffusion] %s", licence_note(f"{known.folder}/{known.filename}"))
    with urllib.request.urlopen(known.url, timeout=60) as response, open(partial, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    os.replace(partial, target)
    return target


def resolve_model_file(choice: str, download: bool) -> str:
    """Full path of a chosen model file; a missing known file is downloaded when allowed."""
    folder, name = _split_choice(choice)
    path = folder_paths.get_full_path(folder, name)
    if path is not None:
        return path
    known = next((k for k in KNOWN_FILES if k.folder == folder and k.filename == name), None)
    folder_dir = folder_paths.get_folder_paths(folder)[0]
    where = f"Put it in {folder_dir} (or a '{folder}' folder listed in extra_model_paths.yaml)"
    if known is None:
        raise FileNotFoundError(f"depth model '{name}' not found in the '{folder}' model folders. {where}.")
    reason = "downloading is off"
    if download and _offline():
        reason = "HF_HUB_OFFLINE is set"
    elif download:
        try:
            return _download(known, folder_dir)
        except OSError as exc:
            reason = f"the download failed ({exc})"
    raise FileNotFoundError(
        f"depth model file '{name}' is missing and {reason}. Get it from {known.url} "
        f"(licence {known.license}). {where}."
    )


def da3_metric_hint(choice: str) -> bool:
    """DA3METRIC and DA3MONO files have identical names and shapes: the official folder or file
    name (DA3METRIC-LARGE) says which one it is."""
    return "metric" in choice.lower()


def depth_anything_version_hint(choice: str) -> int:
    """V1 and V2 weights have identical names and shapes, so the version needs a hint: the
    public V1 files are named depth_anything_vit?14; anything else is taken as V2."""
    name = choice.rsplit("/", 1)[-1].lower()
    if "v2" in name:
        return 2
    if re.search(r"vit[sbl]14|v1", name):
        return 1
    return 2
