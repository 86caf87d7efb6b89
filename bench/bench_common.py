"""What the benchmarks share: starting the host with the pack, and timing.

Run the benchmarks from the pack's folder as modules (`python -m bench.bench_sampling`). Importing
this module registers `stereo_pack` (headless.comfy_host), so they import the pack's library as
`from stereo_pack.stereo_ops import ...` with or without ComfyUI."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from headless import comfy_host



# Makes the pack importable as `stereo_pack` (e.g. stereo_pack.stereo_ops).


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
    """Import the ComfyUI that headless.comfy_host finds (on the CPU) with the pack loaded, `threads` torch
    threads and no progress bars; stop with a clear message when there is none."""
    comfy_host.import_comfyui(comfy_host.require_comfyui(), cpu=True)
    comfy_host.load_pack()
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


def peaks_in_fresh_processes(module: str, names, args: list[str]) -> dict[str, float]:
    """Peak memory of each configuration, each measured by `python -m module --peak-of NAME` in a
    process of its own: in a process that already ran, the allocator reuses memory and hides the peak."""
    peaks = {}
    for name in names:
        out = subprocess.run([sys.executable, "-m", module, *args, "--peak-of", name],
                             capture_output=True, text=True, check=True, cwd=comfy_host.PACK_DIR)
        peaks[name] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
    return peaks


def print_time_and_peak_table(times: dict[str, float], peaks: dict[str, float], base: str) -> None:
    """A Markdown table of each configuration's median time and peak memory, each also as a ratio
    to the configuration `base`."""
    print("| run | time | time ratio | peak memory | memory ratio |")
    print("|---|---|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds * 1e3:.0f} ms | {seconds / times[base]:.2f}x "
              f"| {peaks[name]:.1f} MiB | {peaks[name] / max(peaks[base], 1e-9):.2f}x |")


def print_peak(fn: Callable[[], object]) -> None:
    """The child side of peaks_in_fresh_processes."""
    print(json.dumps({"peak_mib": peak_mib(fn)}))
