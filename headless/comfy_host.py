"""Start ComfyUI inside this process (no web server listening) and run API prompts with its executor."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

LOG = logging.getLogger("StereoDiffusion.headless")

PACK_DIR = Path(__file__).resolve().parent.parent


def _is_comfyui(path: Path) -> bool:
    return (path / "comfy" / "model_management.py").is_file() and (path / "nodes.py").is_file()


def find_comfyui(explicit: str | None = None) -> Path:
    """The ComfyUI checkout: --comfyui, else COMFYUI_PATH, else the one this pack is installed in, else the cwd."""
    candidates = []
    if explicit:
        candidates.append(("--comfyui", Path(explicit)))
    if os.environ.get("COMFYUI_PATH"):
        candidates.append(("COMFYUI_PATH", Path(os.environ["COMFYUI_PATH"])))
    if PACK_DIR.parent.name == "custom_nodes":
        candidates.append(("the pack's location", PACK_DIR.parent.parent))
    candidates.append(("the current directory", Path.cwd()))
    for origin, path in candidates:
        path = path.expanduser().resolve()
        if _is_comfyui(path):
            return path
        if origin in ("--comfyui", "COMFYUI_PATH"):
            raise SystemExit(f"{origin}={path} is not a ComfyUI folder (no comfy/ and nodes.py there)")
    raise SystemExit(
        "ComfyUI not found: pass --comfyui /path/to/ComfyUI, set COMFYUI_PATH, or run from ComfyUI's folder"
    )


class HeadlessServer:
    """What the executor needs from the web server, without one: messages are logged, not sent."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}

    def send_sync(self, event, data, sid=None):
        # Failures are reported once, by run_prompt's PromptError.
        if event == "executing" and isinstance(data, dict) and data.get("node") is not None:
            LOG.debug("executing node %s", data["node"])

    def queue_updated(self):
        pass

    def send_progress_text(self, *args, **kwargs):
        pass


def accelerator() -> str | None:
    """The kind of GPU torch can use here, or None. Packages for other accelerators (Ascend,
    Cambricon) count as one: ComfyUI decides about those itself."""
    import importlib.util

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


def import_comfyui(path: Path, cpu: bool = False) -> bool:
    """Put ComfyUI on sys.path and import it, as its main.py would (without parsing our command
    line). Without a usable GPU it runs on the CPU instead of failing; returns whether it does."""
    # The pack root holds a `nodes` package that must never shadow ComfyUI's nodes.py.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != PACK_DIR]
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
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
    return cpu


def start_comfyui(path: Path, cpu: bool = False, custom_nodes: bool = True) -> Any:
    """Import ComfyUI, load its built-in extra nodes, the custom nodes, and this pack; returns a server for run_prompt."""
    cpu = import_comfyui(path, cpu=cpu)
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
    _run(nodes.init_extra_nodes(init_custom_nodes=custom_nodes, init_api_nodes=False))
    ensure_pack_loaded()
    return server


def ensure_pack_loaded() -> None:
    import nodes

    if "StereoSplit" in nodes.NODE_CLASS_MAPPINGS:
        return
    if not _run(nodes.load_custom_node(str(PACK_DIR))):
        raise SystemExit("ComfyUI could not load the StereoDiffusion pack; see the log above")


def _run(value):
    if asyncio.iscoroutine(value):
        loop = _loop()
        return loop.run_until_complete(value)
    return value


def _loop() -> asyncio.AbstractEventLoop:
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed() or loop.is_running():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


def add_models_folder(root: Path) -> None:
    """Search root/<kind>/ first for every model kind found there (checkpoints, controlnet, ...)."""
    import folder_paths

    if not root.is_dir():
        raise SystemExit(f"--models {root}: not a folder")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        folder_paths.add_model_folder_path(folder.name, str(folder), is_default=True)


# Exceptions whose message is written for the user (the nodes raise these with advice).
READABLE_ERRORS = {"ValueError", "RuntimeError", "FileNotFoundError"}


class PromptError(RuntimeError):
    """The host refused the prompt (validation) or a node failed while running it. The message
    is for people; `details` holds the node's traceback, if any."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def validate(prompt: dict) -> list[str]:
    """The output node ids the host will run; raises PromptError with every validation error."""
    import execution

    valid, error, outputs, node_errors = _run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
    if not valid:
        lines = [f"{error.get('message')}: {error.get('details')}"]
        for node_id, info in (node_errors or {}).items():
            for err in info.get("errors", []):
                lines.append(f"  node {node_id} ({info.get('class_type')}): {err.get('message')}: {err.get('details')}")
        raise PromptError("ComfyUI refused the prompt:\n" + "\n".join(lines))
    return outputs


def new_executor(server: Any = None) -> Any:
    """The host's PromptExecutor; reuse it across prompts so that unchanged nodes (loaded models) are cached."""
    import inspect

    import execution
    from comfy.cli_args import args

    server = server or HeadlessServer()
    if "cache_args" in inspect.signature(execution.PromptExecutor).parameters:  # newer hosts, as their main.py
        return execution.PromptExecutor(server, cache_args={"lru": args.cache_lru, "ram": getattr(args, "cache_ram", 0)})
    return execution.PromptExecutor(server)


def run_prompt(prompt: dict, executor: Any = None, workflow: dict | None = None) -> dict:
    """Validate and execute an API prompt with the host's PromptExecutor; returns the UI outputs per
    node id. `workflow` (UI format) is embedded in saved images, as the frontend's saves do."""
    outputs = validate(prompt)
    executor = executor or new_executor()
    extra_data = {"extra_pnginfo": {"workflow": workflow}} if workflow is not None else {}
    _run(executor.execute_async(prompt, str(uuid.uuid4()), extra_data, outputs))
    if not executor.success:
        details = [data for event, data in executor.status_messages if event == "execution_error"]
        if details:
            d = details[-1]
            title = prompt.get(str(d["node_id"]), {}).get("_meta", {}).get("title") or d["node_type"]
            message = str(d["exception_message"]).strip()
            kind = str(d.get("exception_type", "")).rsplit(".", 1)[-1]
            if kind not in READABLE_ERRORS:  # the nodes' own errors are sentences; others need their type
                message = f"{kind}: {message}"
            raise PromptError(
                f"node {d['node_id']} ({title}) failed: {message}",
                "".join(d.get("traceback") or []),
            )
        raise PromptError("ComfyUI stopped the prompt (interrupted)")
    return executor.history_result["outputs"]


def saved_files(outputs: dict) -> list[Path]:
    """Paths of the files that the output nodes wrote, from the executor's UI outputs."""
    import folder_paths

    files = []
    for node_outputs in outputs.values():
        for items in node_outputs.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item and item.get("type", "output") == "output":
                    files.append(Path(folder_paths.get_output_directory()) / item.get("subfolder", "") / item["filename"])
    return files
