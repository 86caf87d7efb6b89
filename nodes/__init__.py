"""ComfyUI adapters of the pack. Each module lists its node classes in `NODES`.

A module that fails to import (usually a missing optional dependency) disables only its own
nodes, with one log line saying what to install; the rest of the pack still loads.
"""

from __future__ import annotations

import importlib
import logging

from comfy_api.latest import ComfyExtension, io

LOG = logging.getLogger("StereoDiffusion")

# Module name -> the pip package that provides what it needs beyond the host's requirements.
_NODE_MODULES: dict[str, str | None] = {
    "stereo_batch": None,
    "sampling": None,
    "attention": None,
    "compose": None,
    "save": None,
    "inversion": None,
    "depth": "timm einops",
    "depth_map": None,
    "warp": None,
    "comfort": None,
    "check": None,
    "video": "av",
    "video_stream": "av",
}


def load_node_classes() -> list[type[io.ComfyNode]]:
    classes: list[type[io.ComfyNode]] = []
    for module_name, extra in _NODE_MODULES.items():
        try:
            module = importlib.import_module(f".{module_name}", __name__)
        except ModuleNotFoundError as exc:
            hint = f"pip install {extra}" if extra else "pip install -r requirements.txt"
            LOG.warning(
                "[StereoDiffusion] %s nodes disabled: missing Python module %r (%s in ComfyUI's environment)",
                module_name, exc.name, hint,
            )
            continue
        except Exception:
            LOG.exception("[StereoDiffusion] %s nodes disabled: import failed", module_name)
            continue
        classes.extend(module.NODES)
    return classes


class StereoDiffusionExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return load_node_classes()
