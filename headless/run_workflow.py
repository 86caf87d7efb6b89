"""Run a workflow through ComfyUI's executor without a browser, with overrides.

    python -m headless.run_workflow photo_to_stereo --images ~/photos --output ~/stereo \
        --checkpoint v1-5-pruned-emaonly.safetensors

Run it from the pack's folder (`python -m headless.run_workflow`) or from anywhere as a script
(`python custom_nodes/ComfyUI-StereoDiffusion/headless/run_workflow.py ...`). WORKFLOW is the name
of a shipped workflow (see --list) or the path of any workflow JSON saved by ComfyUI (UI or API
format). With a folder of images the workflow runs once per image, each result named after it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import sys
from pathlib import Path

if __package__:
    from . import comfy_host, prompt_overrides as overrides
    from .workflow_to_api import WorkflowError, workflow_to_api
else:  # run as a script: the sibling modules are importable from this folder
    import comfy_host
    import prompt_overrides as overrides
    from workflow_to_api import WorkflowError, workflow_to_api

SHIPPED = comfy_host.PACK_DIR / "examples_workflows"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def workflow_key(title: str) -> str:
    """The short name of a shipped workflow: its file name (the title the template browser shows)
    without a trailing remark in brackets, lower case, words joined by "_"."""
    title = re.sub(r"\s*\([^)]*\)\s*$", "", title)
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def shipped_workflows() -> dict[str, Path]:
    return {workflow_key(p.stem): p for p in sorted(SHIPPED.glob("*.json"))}


def resolve_workflow(name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    shipped = shipped_workflows()
    if name in shipped:
        return shipped[name]
    by_title = {p.stem: p for p in shipped.values()}
    if name in by_title:
        return by_title[name]
    raise SystemExit(f"workflow {name!r} is neither a file nor a shipped workflow ({', '.join(shipped) or 'none'})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_workflow", description=__doc__.split("\n\n")[0])
    parser.add_argument("workflow", nargs="?", help="a shipped workflow's name or a workflow .json file")
    parser.add_argument("--list", action="store_true", help="list the shipped workflows and exit")
    parser.add_argument("--comfyui", help="ComfyUI folder (default: COMFYUI_PATH, the folder the pack is installed in, or the cwd)")
    parser.add_argument("--checkpoint", help="checkpoint file name in ComfyUI/models/checkpoints for every checkpoint loader")
    parser.add_argument("--prompt", help="text of the positive prompt")
    parser.add_argument("--negative", help="text of the negative prompt")
    parser.add_argument("--image", help="input image for the workflow's image loader")
    parser.add_argument("--images", help="folder of images: the workflow runs once per image")
    parser.add_argument("--output", help="output folder (default: ComfyUI's output folder)")
    parser.add_argument("--seed", type=int, help="seed for every sampler")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="set any input: NODE is a node id or title; VALUE is JSON or plain text (repeatable)")
    parser.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="extra models folder laid out like ComfyUI/models (checkpoints/, controlnet/, ...), searched first (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--no-custom-nodes", action="store_true", help="load only ComfyUI's own nodes and this pack")
    parser.add_argument("--print-prompt", action="store_true", help="print the API prompt that is run")
    args = parser.parse_args(argv)
    if not args.list and not args.workflow:
        parser.error("give a workflow (or --list)")
    if args.image and args.images:
        parser.error("--image and --images exclude each other")
    return args


def input_images(args: argparse.Namespace) -> list[Path | None]:
    if args.image:
        path = Path(args.image).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"--image {args.image}: no such file")
        return [path]
    if args.images:
        folder = Path(args.images).expanduser().resolve()
        if not folder.is_dir():
            raise SystemExit(f"--images {args.images}: not a folder")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SystemExit(f"--images {args.images}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in that folder")
        return images
    return [None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list:
        for name, path in shipped_workflows().items():
            print(f"{name}\t{path.name}")
        return 0
    workflow = json.loads(resolve_workflow(args.workflow).read_text())
    images = input_images(args)
    host = comfy_host.find_comfyui(args.comfyui)
    server = comfy_host.start_comfyui(host, cpu=args.cpu, custom_nodes=not args.no_custom_nodes)
    for folder in args.models:
        comfy_host.add_models_folder(Path(folder).expanduser().resolve())
    import folder_paths
    import nodes

    if args.output:
        out = Path(args.output).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(out))
    try:
        base = workflow_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
        base = overrides.apply(
            base, checkpoint=args.checkpoint, prompt=args.prompt, negative=args.negative,
            seed=args.seed, sets=args.set,
        )
    except (WorkflowError, overrides.OverrideError) as exc:
        raise SystemExit(f"cannot run {args.workflow}: {exc}")
    executor = comfy_host.new_executor(server)
    failures = 0
    for image in images:
        prompt = copy.deepcopy(base)
        if image is not None:
            folder_paths.set_input_directory(str(image.parent))
            try:
                overrides.set_image(prompt, image.name)
            except overrides.OverrideError as exc:
                raise SystemExit(f"cannot run {args.workflow}: {exc}")
            overrides.set_filename_prefix(prompt, image.stem)
        if args.print_prompt:
            print(json.dumps(prompt, indent=1))
        label = image.name if image else args.workflow
        try:
            files = comfy_host.saved_files(comfy_host.run_prompt(prompt, executor))
        except comfy_host.PromptError as exc:
            failures += 1
            print(f"FAILED {label}: {exc}", file=sys.stderr)
            continue
        for f in files:
            print(f"{label} -> {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
