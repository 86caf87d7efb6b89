"""Progress of the running node on the console, fed by the host's ProgressBar hook.

Sampling, the inversion and depth estimation report their steps through `comfy.utils.ProgressBar`;
the web server turns those into the frontend's progress bars, and this turns them into a console
line: redrawn in place on a terminal, and printed every few percent (or every half minute) when
the output goes to a log file, so that a long inversion is never silent.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

LOG_EVERY_FRACTION = 0.1
LOG_EVERY_S = 30.0
REDRAW_EVERY_S = 0.2


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ConsoleProgress:
    """Call it as the host's progress hook: (value, total, preview, prompt_id=None, node_id=None).
    `current_node` answers the running node's id when the hook is not told; `labels` maps node
    ids to what the user calls them ("Stereo KSampler (node 12)")."""

    def __init__(self, stream: TextIO | None = None, current_node: Callable[[], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic, interactive: bool | None = None):
        self.stream = stream or sys.stderr
        self.current_node = current_node or (lambda: None)
        self.clock = clock
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.labels: dict[str, str] = {}
        self._node: str | None = None
        self._started = 0.0
        self._shown_at = 0.0
        self._shown_value = 0.0
        self._open_line = False

    def __call__(self, value, total, preview_image=None, prompt_id=None, node_id=None) -> None:
        node = str(node_id if node_id is not None else self.current_node())
        now = self.clock()
        if node != self._node:
            self.finish_line()
            # A terminal shows the first step at once; a log waits for the first tenth.
            self._node, self._started, self._shown_value = node, now, 0.0
            self._shown_at = float("-inf") if self.interactive else now
        if not total or total <= 0:
            return
        value = min(max(float(value), 0.0), float(total))
        done = value >= total
        if self.interactive:
            due = done or now - self._shown_at >= REDRAW_EVERY_S
        else:
            due = done or value - self._shown_value >= LOG_EVERY_FRACTION * total or now - self._shown_at >= LOG_EVERY_S
        if not due or value == self._shown_value:
            return
        self._shown_at, self._shown_value = now, value
        self._write(self._line(node, value, total, now - self._started), done)

    def _line(self, node: str, value: float, total: float, elapsed: float) -> str:
        label = self.labels.get(node, f"node {node}")
        text = f"{label}: {int(value)}/{int(total)} ({100 * value / total:.0f}%), {_duration(elapsed)}"
        if 0 < value < total and elapsed >= 1.0:
            text += f", about {_duration(elapsed * (total - value) / value)} left"
        return text

    def _write(self, text: str, done: bool) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[2K" + text + ("\n" if done else ""))
            self._open_line = not done
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish_line(self) -> None:
        """End a half-drawn line (before other output, or when the node changes)."""
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def install(progress: ConsoleProgress) -> None:
    """Make `progress` the host's ProgressBar hook and silence the host's own tqdm bars, which
    would draw a second, unlabelled bar for the sampling steps."""
    import comfy.utils

    comfy.utils.set_progress_bar_global_hook(progress)
    comfy.utils.set_progress_bar_enabled(False)


def executing_node() -> str | None:
    """The id of the node the host is running (its executing context), if the host has one."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return None if context is None else context.node_id
