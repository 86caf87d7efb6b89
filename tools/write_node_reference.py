"""Write docs/nodes.md, the node reference, from the pack's node definitions as the host loads them:
every node's id, category, description, inputs (type, default, range, tooltip) and outputs.

    python -m tools.write_node_reference [--comfyui /path/to/ComfyUI]

The test suite renders it again and fails when the file no longer matches the nodes.
"""

from __future__ import annotations

import argparse
import sys

from headless import comfy_host

OUT = comfy_host.PACK_DIR / "docs" / "nodes.md"

HEADER = """# Node reference

Every node lives under the `stereo/` category. A **stereo batch** of 2N images (or latents) holds
the N left views first, then the N right views: pair i is (i, N + i). Inputs are listed in the
order the node shows them; optional ones are marked. This page is written from the node
definitions by `python -m tools.write_node_reference`.
"""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _kind(spec: tuple) -> str:
    return "COMBO" if isinstance(spec[0], list) else str(spec[0])


def _details(spec: tuple) -> str:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    parts = []
    choices = spec[0] if isinstance(spec[0], list) else options.get("options")
    # File lists (and so their default, the first file present) depend on the machine, and the
    # host's sampler and scheduler lists on its version: only the pack's own short lists are written.
    if choices and any("/" in str(c) or "." in str(c) for c in choices):
        return "a file from the list"
    if choices and len(choices) <= 12:
        parts.append("one of " + ", ".join(f"`{v}`" for v in choices))
    if "default" in options:
        parts.append(f"default `{options['default']}`")
    if "min" in options and "max" in options:
        parts.append(f"{options['min']} to {options['max']}")
    return "; ".join(parts)


def node_section(node_id: str, cls) -> str:
    info = cls.INPUT_TYPES()
    schema = cls.GET_SCHEMA()
    lines = [f"## {schema.display_name or node_id} (`{node_id}`)", ""]
    lines += [_cell(schema.description), "", "| input | type | values | what it is |", "|---|---|---|---|"]
    for group in ("required", "optional"):
        for name, spec in info.get(group, {}).items():
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            label = f"`{name}`" + (" (optional)" if group == "optional" else "")
            lines.append(f"| {label} | {_kind(spec)} | {_cell(_details(spec))} | {_cell(options.get('tooltip', ''))} |")
    if not schema.outputs:
        return "\n".join(lines) + "\n\nOutputs: files, and what the node shows in the UI.\n"
    lines += ["", "| output | type | what it is |", "|---|---|---|"]
    for out in schema.outputs:
        name = out.display_name or out.id
        lines.append(f"| `{name}` | {out.get_io_type()} | {_cell(out.tooltip or '')} |")
    return "\n".join(lines) + "\n"


def render(node_classes: dict) -> str:
    prefix = comfy_host.pack_module_name() + "."
    pack = {k: v for k, v in node_classes.items() if v.__module__.startswith(prefix)}
    by_category: dict[str, list[str]] = {}
    for node_id, cls in pack.items():
        by_category.setdefault(cls.GET_SCHEMA().category, []).append(node_id)
    parts = [HEADER]
    for category in sorted(by_category):
        parts.append(f"\n# {category}\n")
        for node_id in sorted(by_category[category]):
            parts.append("\n" + node_section(node_id, pack[node_id]))
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui")
    args = parser.parse_args()
    comfy_host.start_comfyui(comfy_host.require_comfyui(args.comfyui), cpu=True, custom_nodes=False)
    import nodes

    OUT.write_text(render(nodes.NODE_CLASS_MAPPINGS), encoding="utf-8")
    print(OUT)


if __name__ == "__main__":
    sys.exit(main())
