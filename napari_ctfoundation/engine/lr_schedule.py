"""Learning-rate multipliers shared by the training loops (generation, DiCE).

A multiplier is a pure function of the optimiser step, so a resumed run gets
the same rate as an uninterrupted one without storing scheduler state.
"""
from __future__ import annotations

import math
from typing import Callable

from .errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def lr_multiplier(schedule: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Multiplier of the base rate at optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then constant, or cosine from 1 to 0 at ``total_steps``."""
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"learning-rate schedule {schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    warm, total = max(1, warmup_steps), max(1, total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "cosine":
            done = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * done))
        return 1.0

    return factor
