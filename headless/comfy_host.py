"""The one place that finds ComfyUI, imports it into this process and loads this pack.

The headless runner, the tests, the benchmarks and the tools all start the host through here, so
they find the same ComfyUI, import it the same way, and see the pack under one module name: the
name the host's own custom-node loader gives it. `stereo_pack` is a synonym of that name for code
outside the pack (tests, bench, tools): `from stereo_pack.stereo_ops import stereo_warp` gives the
very module the host's nodes use, and works before the host is imported (stereo_ops needs no host).
Importing this module registers the synonym.

The pack root itself may be on sys.path (`python -m headless.run_workflow` and `python -m bench.…`
run from it): its `nodes` package would shadow ComfyUI's nodes.py, so ComfyUI always goes first.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

LOG = logging.getLogger("StereoDiffusion.headless")

PACK_DIR = Path(__file__).resolve().parent.parent
PACK_ALIAS = "stereo_pack"
# Where the pack's test setup (.ci/run) expects a ComfyUI checkout when nothing else names one.
CACHED_HOST = Path.home() / ".cache" / "comfyui-stereodiffusion" / "ComfyUI"


# ---------------------------------------------------------------------------------------------
# Finding the host


def is_comfyui(path: Path) -> bool:
    return (path / "comfy" / "model_management.py").is_file() and (path / "nodes.py").is_file()


def find_comfyui(explicit: str | os.PathLike | None = None) -> Path | None:
    """The ComfyUI checkout to use, or None: `explicit` (--comfyui), else COMFYUI_PATH, else the
    ComfyUI this pack is installed in, else the current directory, else CACHED_HOST. A folder
    named explicitly or by COMFYUI_PATH must be a ComfyUI checkout."""
    for origin, value in (("--comfyui", explicit), ("COMFYUI_PATH", os.environ.get("COMFYUI_PATH"))):
        if value:
            path = Path(value).expanduser().resolve()
            if not is_comfyui(path):
                raise SystemExit(f"{origin}={path} is not a ComfyUI folder (no comfy/ and nodes.py there)")
            return path
    candidates = [Path.cwd(), CACHED_HOST]
    if PACK_DIR.parent.name == "custom_nodes":
        candidates.insert(0, PACK_DIR.parent.parent)
    return next((p.resolve() for p in candidates if is_comfyui(p)), None)


def require_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    path = find_comfyui(explicit)
    if path is None:
        raise SystemExit(
            "ComfyUI not found: pass --comfyui /path/to/ComfyUI, set COMFYUI_PATH, or run from ComfyUI's folder"
        )
    return path


def host_version(path: Path) -> str:
    version_file = path / "comfyui_version.py"
    for line in version_file.read_text().splitlines() if version_file.is_file() else []:
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


# ---------------------------------------------------------------------------------------------
# Importing the host


def accelerator() -> str | None:
    """The kind of GPU torch can use here, or None. Packages for other accelerators (Ascend,
    Cambricon) count as one: ComfyUI decides about those itself."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return "xpu"
    for package in ("torch_npu", "torch_mlu", "torch_directml"):
        if importlib.util.find_spec(package) is not None:
            return package
    return None


_imported: dict[str, Any] = {}


def import_comfyui(path: Path, cpu: bool = False) -> bool:
    """Put ComfyUI first on sys.path and import it as its main.py would (without parsing our
    command line), once per process. Without a usable GPU it runs on the CPU instead of failing.
    Returns whether it runs on the CPU."""
    path = Path(path).resolve()
    if _imported:
        if _imported["path"] != path:
            raise RuntimeError(f"a different ComfyUI ({_imported['path']}) is already imported in this process")
        return _imported["cpu"]
    shadowing = sys.modules.get("nodes")
    if shadowing is not None and Path(getattr(shadowing, "__file__", "") or "").resolve() != path / "nodes.py":
        raise RuntimeError(f"a module named `nodes` ({shadowing}) was imported before ComfyUI's nodes.py")
    sys.path[:] = [str(path)] + [p for p in sys.path if not (p and Path(p).resolve() == path)]
    import comfy.cli_args

    if not cpu and accelerator() is None:
        # ComfyUI would stop with "Found no NVIDIA driver" at its first device query.
        print("No usable GPU found: running on the CPU, which is slow (see the README's "
              "'Try it in a minute'); pass --cpu to skip this check.", file=sys.stderr, flush=True)
        cpu = True
    if cpu:
        comfy.cli_args.args.cpu = True
        # ComfyUI keeps text encoders in float16 by default; on a CPU that is tens of times slower.
        if not comfy.cli_args.args.fp16_text_enc:
            comfy.cli_args.args.fp32_text_enc = True
    import comfy.model_management  # noqa: F401  (reads the device arguments at import)

    # ComfyUI's `utils` package must be imported before nodes.py puts comfy/ (with its utils.py)
    # first on sys.path, as main.py does.
    from utils.extra_config import load_extra_path_config

    extra_paths = path / "extra_model_paths.yaml"
    if extra_paths.is_file():
        load_extra_path_config(str(extra_paths))
    import nodes

    if not hasattr(nodes, "load_custom_node"):
        raise RuntimeError(f"{path}/nodes.py is not ComfyUI's nodes module")
    _imported.update(path=path, cpu=cpu)
    return cpu


# ---------------------------------------------------------------------------------------------
# The pack under one module name


def _default_pack_name() -> str:
    return str(PACK_DIR).replace(".", "_x_")  # what nodes.load_custom_node calls a pack folder


def _host_loaded_pack() -> ModuleType | None:
    """The pack as the host's custom-node loader registered it, if it did (other importers, such
    as pytest, may hold the pack's __init__.py under other names)."""
    host_nodes = sys.modules.get("nodes")
    for folder in getattr(host_nodes, "LOADED_MODULE_DIRS", {}).values():
        if Path(folder).resolve() == PACK_DIR:
            return sys.modules.get(folder.replace(".", "_x_"))  # the loader's module name for a folder
    return None


def pack_module_name() -> str:
    """The pack's module name in this process: the host's name for it once loaded (a pack installed
    in ComfyUI/custom_nodes may have been loaded under its path there), else the name the host
    will give it, under which an empty package serves stereo_ops until then."""
    loaded = _host_loaded_pack()
    if loaded is not None:
        return loaded.__name__
    name = _default_pack_name()
    if name not in sys.modules:
        spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
        spec.submodule_search_locations = [str(PACK_DIR)]
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


def pack_module(name: str) -> ModuleType:
    """A module of the pack by its dotted name inside the pack, e.g. "nodes.sampling"."""
    return importlib.import_module(f"{pack_module_name()}.{name}")


class _PackSynonym(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `stereo_pack[.x]` to the module the pack's real name holds, so that both names
    give one module object."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == PACK_ALIAS or fullname.startswith(PACK_ALIAS + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        real = pack_module_name() + spec.name[len(PACK_ALIAS):]
        module = importlib.import_module(real)
        # Alias the submodules already loaded, too: importing one of them through the synonym later
        # would set it as an attribute of its package, over a function of the same name that the
        # package re-exports (stereo_ops.anaglyph).
        for name, submodule in list(sys.modules.items()):
            if name.startswith(real + "."):
                sys.modules.setdefault(spec.name + name[len(real):], submodule)
        return module

    def exec_module(self, module):
        pass  # it ran under its real name


def register_pack_synonym() -> None:
    if not any(isinstance(finder, _PackSynonym) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PackSynonym())


register_pack_synonym()


def load_pack() -> ModuleType:
    """The pack as ComfyUI loaded it: through the host's own custom-node loader, now, unless the
    host already did (the pack installed in its custom_nodes). Needs import_comfyui first."""
    module = _host_loaded_pack()
    if module is None:
        import nodes

        if not run_coroutine(nodes.load_custom_node(str(PACK_DIR))):
            raise RuntimeError("ComfyUI could not load the StereoDiffusion pack; see the log above")
        module = _host_loaded_pack()
    sys.modules[PACK_ALIAS] = module
    return module


# ---------------------------------------------------------------------------------------------
# Starting the host without its web server


class HeadlessServer:
    """What the executor needs from the web server, without one: messages are logged, not sent."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}

    def send_sync(self, event, data, sid=None):
        # Failures are reported once, by prompt_execution.run_prompt's PromptError.
        if event == "executing" and isinstance(data, dict) and data.get("node") is not None:
            LOG.debug("executing node %s", data["node"])

    def queue_updated(self):
        pass

    def send_progress_text(self, *args, **kwargs):
        pass


def start_comfyui(path: Path, cpu: bool = False, custom_nodes: bool = True) -> Any:
    """Import ComfyUI, load its built-in extra nodes, the custom nodes and this pack; returns the
    server object that prompt_execution.new_executor takes."""
    import_comfyui(path, cpu=cpu)
    import nodes

    server = HeadlessServer()
    try:  # packs that register web routes at import need a PromptServer instance
        import server as comfy_server

        if getattr(comfy_server.PromptServer, "instance", None) is None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            server = comfy_server.PromptServer(loop)
    except Exception as exc:  # the executor itself does not need it
        LOG.warning("running without ComfyUI's PromptServer (%s); packs that need it may fail to load", exc)
    run_coroutine(nodes.init_extra_nodes(init_custom_nodes=custom_nodes, init_api_nodes=False))
    load_pack()
    return server


def add_models_folder(root: Path) -> None:
    """Search root/<kind>/ first for every model kind found there (checkpoints, controlnet, ...)."""
    import folder_paths

    if not root.is_dir():
        raise SystemExit(f"--models {root}: not a folder")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        folder_paths.add_model_folder_path(folder.name, str(folder), is_default=True)


def run_coroutine(value):
    """The value of a host call that is a coroutine on newer hosts and a plain value on older ones."""
    if not asyncio.iscoroutine(value):
        return value
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed() or loop.is_running():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop.run_until_complete(value)
