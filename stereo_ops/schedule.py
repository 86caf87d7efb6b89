"""Turn fractions of a sampling schedule into step indices, for any number of steps.

Step k means "before the model call of step k", i.e. after k steps have run. The reference
implementation shifts after 11 of 50 DDIM steps and re-copies after 21, 31 and 41; with the
defaults here (shift_at 0.2, interval 0.2) that is after 10, then 20, 30 and 40.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StereoSchedule:
    steps: int
    shift_step: int
    spsmd_steps: tuple[int, ...]

    def is_edit_step(self, step: int) -> bool:
        return step == self.shift_step or step in self.spsmd_steps


def _check_fraction(name: str, value: float, low: float, high: float) -> float:
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def plan_schedule(
    steps: int,
    shift_at: float = 0.2,
    spsmd_interval: float = 0.2,
    spsmd: bool = True,
    last_edit_step: int | None = None,
) -> StereoSchedule:
    """Pick the shift step and the SPSMD steps for a schedule of `steps` steps.

    The shift lands on round(shift_at * steps), kept inside [1, steps - 1] so that at least one
    step runs before it and one after. SPSMD steps follow every max(1, round(interval * steps))
    steps and stop before the last step, so that the model always has the final word.
    `last_edit_step` lowers that bound for a solver whose last steps cannot be edited.
    """
    if int(steps) != steps or steps < 2:
        raise ValueError(f"stereo sampling needs at least 2 steps, got {steps}")
    steps = int(steps)
    last = steps - 1 if last_edit_step is None else min(int(last_edit_step), steps - 1)
    if last < 1:
        raise ValueError(
            f"{steps} steps leave no step for the stereo shift with this sampler; use at least {steps + 1 - last} steps"
        )
    shift_at = _check_fraction("shift_at", shift_at, 0.0, 1.0)
    shift_step = min(max(int(round(shift_at * steps)), 1), last)
    spsmd_steps: tuple[int, ...] = ()
    if spsmd:
        interval = _check_fraction("spsmd_interval", spsmd_interval, 0.0, 1.0)
        if interval > 0.0:
            every = max(1, int(round(interval * steps)))
            spsmd_steps = tuple(range(shift_step + every, last + 1, every))
    return StereoSchedule(steps, shift_step, spsmd_steps)
