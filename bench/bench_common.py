"""What the benchmarks share: importing the pack's library without ComfyUI, starting the host with
the pack, and timing."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import host_harness  # noqa: E402

# Makes the pack importable as `stereo_pack` (e.g. stereo_pack.stereo_ops).
host_harness.register_pack_alias()


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls of `fn`, after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def start_host(threads: int) -> None:
    """Import the ComfyUI host the tests find (on the CPU) with the pack loaded, `threads` torch
    threads and no progress bars; stop with a clear message when there is none."""
    host = host_harness.find_host()
    if host is None:
        raise SystemExit("no ComfyUI found: set COMFYUI_PATH")
    host_harness.import_host(host)
    host_harness.load_pack()
    import comfy.utils
    import torch

    torch.set_num_threads(threads)
    comfy.utils.PROGRESS_BAR_ENABLED = False
