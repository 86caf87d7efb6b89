"""What the benchmarks share: importing the pack's library without ComfyUI, starting the host with
the pack, and timing."""

from __future__ import annotations

import json
import statistics
import subprocess
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


def interleaved(configs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each configuration, after a warm-up of each, the configurations
    alternating run by run so that the load of a busy machine falls on all of them alike."""
    for fn in configs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, fn in configs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_mib(fn: Callable[[], object]) -> float:
    """Rise of this process's peak resident set during one call of `fn` (Linux; NaN elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
    except OSError:
        return float("nan")
    base = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - base) / 1024


def peaks_in_fresh_processes(script: str, names, args: list[str]) -> dict[str, float]:
    """Peak memory of each configuration, each measured by `script --peak-of NAME` in a process of
    its own: in a process that already ran, the allocator reuses memory and hides the peak."""
    peaks = {}
    for name in names:
        out = subprocess.run([sys.executable, script, *args, "--peak-of", name],
                             capture_output=True, text=True, check=True)
        peaks[name] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
    return peaks


def print_peak(fn: Callable[[], object]) -> None:
    """The child side of peaks_in_fresh_processes."""
    print(json.dumps({"peak_mib": peak_mib(fn)}))
