"""The host's input and output folders pointed at a test's own folder, and the host's video nodes
loaded, for tests that run prompts in the real host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def host_folders(root: Path) -> Iterator[Path]:
    """`root/in` and `root/out` (made here) as the host's input and output folders; the previous
    folders come back afterwards, also when the test fails."""
    import folder_paths

    (root / "in").mkdir(exist_ok=True)
    (root / "out").mkdir(exist_ok=True)
    old = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    folder_paths.set_input_directory(str(root / "in"))
    folder_paths.set_output_directory(str(root / "out"))
    try:
        yield root
    finally:
        folder_paths.set_input_directory(old[0])
        folder_paths.set_output_directory(old[1])


def load_host_video_nodes(host: Path) -> None:
    """LoadVideo and GetVideoComponents: built-in extra nodes of both hosts, loaded through the
    host's own loader (the test host starts with its core nodes only)."""
    import nodes

    if "LoadVideo" in nodes.NODE_CLASS_MAPPINGS:
        return
    result = nodes.load_custom_node(str(host / "comfy_extras" / "nodes_video.py"), module_parent="comfy_extras")
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    assert result and "LoadVideo" in nodes.NODE_CLASS_MAPPINGS
