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
import os
import re
import sys
import traceback
from pathlib import Path

if __package__:
    from . import comfy_host, console_progress, prompt_checks, prompt_execution, prompt_overrides as overrides
    from .workflow_to_api import WorkflowError, check_workflow_shape, input_definitions, set_widget_values, workflow_to_api
else:  # run as a script: the sibling modules are importable from this folder
    import comfy_host
    import console_progress
    import prompt_checks
    import prompt_execution
    import prompt_overrides as overrides
    from workflow_to_api import WorkflowError, check_workflow_shape, input_definitions, set_widget_values, workflow_to_api

SHIPPED = comfy_host.PACK_DIR / "examples_workflows"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def workflow_key(title: str) -> str:
    """The short name of a shipped workflow: its file name (the title the template browser shows)
    without a trailing remark in brackets, lower case, words joined by "_"."""
    title = re.sub(r"\s*\([^)]*\)\s*$", "", title)
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def short_name(display_name: str) -> str:
    """A node's displayed name without the search keywords in brackets at its end
    ("Estimate Disparity (Depth)" -> "Estimate Disparity"): how the runner names and finds nodes."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", display_name) or display_name


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
    parser.add_argument("--depth-model", metavar="FOLDER/FILE",
                        help="depth model for every Load Disparity Model node, as that node lists it: "
                        "depthanything/<file> or midas/<file> (in ComfyUI/models or a --models folder); "
                        "with a file you already have, the run needs no download")
    parser.add_argument("--prompt", help="text of the positive prompt")
    parser.add_argument("--negative", help="text of the negative prompt")
    parser.add_argument("--image", help="input image for the workflow's image loader")
    parser.add_argument("--images", help="folder of images: the workflow runs once per image")
    parser.add_argument("--output", help="output folder (default: ComfyUI's output folder)")
    parser.add_argument("--seed", type=int, help="seed for every sampler")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="set any input: NODE is a node id, a title or the name shown on the node "
                        "(e.g. \"Stereo Null-Text Inversion.steps=10\"); VALUE is JSON or plain text (repeatable)")
    parser.add_argument("--models", action="append", default=[], metavar="DIR",
                        help="extra models folder laid out like ComfyUI/models (checkpoints/, controlnet/, ...), searched first (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU")
    parser.add_argument("--servers", help="comma-separated ComfyUI servers (http://host:port,...): the workflow's "
                        "Stereo Convert Video File runs on them in segments, joined into one file (needs --video)")
    parser.add_argument("--video", help="with --servers: the video file to convert (uploaded to every server)")
    parser.add_argument("--segments", type=int, help="with --servers: how many segments (default: one per server)")
    parser.add_argument("--no-custom-nodes", action="store_true", help="load only ComfyUI's own nodes and this pack")
    parser.add_argument("--print-prompt", action="store_true", help="print each API prompt before running it")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the API prompt(s) and check them as ComfyUI would, without running anything")
    parser.add_argument("--verbose", action="store_true", help="show ComfyUI's tracebacks when something fails")
    args = parser.parse_args(argv)
    if not args.list and not args.workflow:
        parser.error("give a workflow (or --list)")
    if args.image and args.images:
        parser.error("--image and --images exclude each other")
    for assignment in args.set:  # syntax errors before the host starts (which takes seconds)
        try:
            overrides.parse_assignment(assignment)
        except overrides.OverrideError as exc:
            parser.error(str(exc))
    if args.servers and not args.video:
        parser.error("--servers needs --video (the file the servers convert)")
    return args


def check_image_file(path: Path, option: str) -> Path:
    """Refuse a file that is not a picture PIL can read, before any model loads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise SystemExit(f"{option} {path}: not an image that can be read ({exc})")
    return path


def input_images(args: argparse.Namespace) -> list[Path | None]:
    if args.image:
        path = Path(args.image).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"--image {args.image}: no such file")
        return [check_image_file(path, "--image")]
    if args.images:
        folder = Path(args.images).expanduser().resolve()
        if not folder.is_dir():
            raise SystemExit(f"--images {args.images}: not a folder")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SystemExit(f"--images {args.images}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in that folder")
        return [check_image_file(p, "--images") for p in images]
    return [None]


class _HostErrorFilter(logging.Filter):
    """Drop the executor's own error log (its traceback, its validation report): the runner reports
    each failure once, as one message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and os.path.basename(record.pathname) == "execution.py")


def _quiet_host_errors() -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(_HostErrorFilter())


def _image_size(name: str) -> tuple[int, int] | None:
    import folder_paths
    from PIL import Image

    try:
        with Image.open(folder_paths.get_annotated_filepath(name)) as image:
            width, height = image.size
            # LoadImage turns the picture upright by its EXIF orientation: 5-8 swap the sides.
            if image.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except (OSError, ValueError):
        return None


def _inversion_samplers(node_classes) -> tuple[str, ...] | None:
    """The samplers that can retrace an inversion, as the Stereo KSampler's own module lists them."""
    sampler = node_classes.get(prompt_checks.SAMPLER)
    module = sys.modules.get(getattr(sampler, "__module__", ""))
    return getattr(module, "INVERSION_SAMPLERS", None)


def load_workflow(name: str) -> dict:
    path = resolve_workflow(name)
    try:
        workflow = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read workflow {path}: {exc}")
    try:
        check_workflow_shape(workflow)
    except WorkflowError as exc:
        raise SystemExit(f"cannot read workflow {path}: {exc}")
    return workflow


def build_runs(args, workflow: dict, images: list, node_classes, display_names: dict) -> tuple[list, list[str]]:
    """(label, API prompt, UI workflow to embed) per run, with every override applied, and the
    settings that do not fit together (checked here, before any model is loaded)."""
    def fail(exc) -> SystemExit:
        return SystemExit(f"cannot run {args.workflow}: {exc}")

    try:
        base = workflow_to_api(workflow, node_classes)
        input_names = {kind: [n for n, _, _ in input_definitions(node_classes[kind])]
                       for kind in {node["class_type"] for node in base.values()}}
        shared = overrides.apply(
            base, checkpoint=args.checkpoint, prompt=args.prompt, negative=args.negative,
            seed=args.seed, sets=args.set, display_names=display_names, input_names=input_names,
            depth_model=args.depth_model,
        )
    except (WorkflowError, overrides.OverrideError) as exc:
        raise fail(exc)
    for node in shared.values():  # untitled nodes carry the name the UI shows, as the UI's prompts do
        if node.get("_meta", {}).get("title") in (None, node["class_type"]):
            node.setdefault("_meta", {})["title"] = display_names.get(node["class_type"], node["class_type"])
    if args.output:
        overrides.flatten_filename_prefixes(shared)
    runs, problems = [], []
    samplers = _inversion_samplers(node_classes)
    for image in images:
        prompt = copy.deepcopy(shared)
        if image is not None:
            try:
                overrides.set_image(prompt, image.name)
            except overrides.OverrideError as exc:
                raise fail(exc)
            overrides.set_filename_prefix(prompt, image.stem)
        for problem in prompt_checks.inversion_problems(prompt, _image_size, display_names, samplers):
            if problem not in problems:
                problems.append(problem)
        embedded = None
        if "nodes" in workflow:  # a UI-format workflow: embed it showing the values that ran
            embedded = set_widget_values(workflow, overrides.changed_inputs(base, prompt), node_classes)
        runs.append((image.name if image else args.workflow, prompt, embedded))
    return runs, problems


def settings_error(args, problems: list[str]) -> SystemExit:
    listed = problems[0] if len(problems) == 1 else "".join(f"\n  - {p}" for p in problems)
    return SystemExit(f"cannot run {args.workflow}: {listed}")


def print_prompts(runs) -> None:
    if len(runs) == 1:
        print(json.dumps(runs[0][1], indent=1), flush=True)
    else:
        print(json.dumps({label: prompt for label, prompt, _ in runs}, indent=1), flush=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, path in shipped_workflows().items():
            print(f"{name}\t{path.name}")
        return 0
    workflow = load_workflow(args.workflow)
    images = input_images(args)
    host = comfy_host.require_comfyui(args.comfyui)
    server = comfy_host.start_comfyui(host, cpu=args.cpu, custom_nodes=not args.no_custom_nodes)
    if not args.verbose:
        _quiet_host_errors()
    for folder in args.models:
        comfy_host.add_models_folder(Path(folder).expanduser().resolve())
    import folder_paths
    import nodes

    if args.output:
        out = Path(args.output).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(out))
    if images[0] is not None:
        folder_paths.set_input_directory(str(images[0].parent))
    node_classes = nodes.NODE_CLASS_MAPPINGS
    display_names = {kind: short_name(nodes.NODE_DISPLAY_NAME_MAPPINGS.get(kind) or kind) for kind in node_classes}
    runs, problems = build_runs(args, workflow, images, node_classes, display_names)

    if args.dry_run:
        print_prompts(runs)
        if problems:
            raise settings_error(args, problems)
        for label, prompt, _ in runs:
            try:
                prompt_execution.validate(prompt)
            except prompt_execution.PromptError as exc:
                raise SystemExit(f"{label}: {exc}")
        print(f"dry run: {len(runs)} prompt(s) checked, nothing was run", file=sys.stderr)
        return 0
    if problems:
        raise settings_error(args, problems)
    if args.servers:
        return run_on_servers(args, runs[0][1], Path(folder_paths.get_output_directory()))

    progress = console_progress.ConsoleProgress(
        current_node=lambda: console_progress.executing_node() or getattr(server, "last_node_id", None)
    )
    console_progress.install(progress)
    executor = prompt_execution.new_executor(server)
    failures = 0
    for label, prompt, embedded in runs:
        if args.print_prompt:
            print(json.dumps(prompt, indent=1), flush=True)
        progress.labels = {node_id: prompt_checks.node_label(prompt, node_id, display_names) for node_id in prompt}
        try:
            files = prompt_execution.saved_files(prompt_execution.run_prompt(prompt, executor, workflow=embedded))
        except prompt_execution.PromptError as exc:
            progress.finish_line()
            failures += 1
            if args.verbose and exc.details:
                print(exc.details, file=sys.stderr)
            print(f"FAILED {label}: {exc}", file=sys.stderr)
            continue
        progress.finish_line()
        for f in files:
            print(f"{label} -> {f}", flush=True)
    return 1 if failures else 0


def run_on_servers(args, prompt: dict, output: Path) -> int:
    """The prompt's Stereo Convert Video File on several servers, one segment each, joined here."""
    if __package__:
        from . import segment_servers
    else:
        import segment_servers
    from stereo_pack.stereo_ops.stereo_video import file_suffix

    video = Path(args.video).expanduser().resolve()
    if not video.is_file():
        raise SystemExit(f"--video {args.video}: no such file")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    try:
        node = prompt[segment_servers.convert_node_id(prompt)]["inputs"]
        projection = "VR180" if node.get("format") == "VR180 MP4" else "flat"
        out = output / f"{video.stem}_stereo{file_suffix(node.get('layout', 'parallel'), projection)}.mp4"
        joined = segment_servers.convert_on_servers(prompt, servers, video, out, segments=args.segments)
    except segment_servers.SegmentError as exc:
        print(f"FAILED {video.name}: {exc}", file=sys.stderr)
        return 1
    print(f"{video.name} -> {joined}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as exc:  # one readable line; the traceback only when asked for
        if args.verbose:
            traceback.print_exc()
        print(f"run_workflow failed: {type(exc).__name__}: {exc} (--verbose shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
