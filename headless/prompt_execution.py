"""Validate and run API-format prompts with the host's own executor, in this process."""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path
from typing import Any

if __package__:
    from .comfy_host import HeadlessServer, run_coroutine
else:  # run_workflow.py run as a script: its folder is on sys.path
    from comfy_host import HeadlessServer, run_coroutine

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

    valid, error, outputs, node_errors = run_coroutine(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
    if not valid:
        lines = [f"{error.get('message')}: {error.get('details')}"]
        for node_id, info in (node_errors or {}).items():
            for err in info.get("errors", []):
                lines.append(f"  node {node_id} ({info.get('class_type')}): {err.get('message')}: {err.get('details')}")
        raise PromptError("ComfyUI refused the prompt:\n" + "\n".join(lines))
    return outputs


def new_executor(server: Any = None) -> Any:
    """The host's PromptExecutor; reuse it across prompts so that unchanged nodes (loaded models) are cached."""
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
    run_coroutine(executor.execute_async(prompt, str(uuid.uuid4()), extra_data, outputs))
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
