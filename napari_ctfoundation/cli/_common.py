"""Small helpers shared by the CLI command modules."""

from __future__ import annotations

import sys
from typing import Callable, List, Optional


def progress_bar(description: str) -> tuple:
    """A tqdm bar on stderr and the engine callback that drives it.

    Returns ``(callback, close)``. The bar's unit follows what the engine
    reports (slices, views, steps, cases).
    """
    from tqdm import tqdm

    state: dict = {"bar": None}

    def callback(done: int, total: int, unit: str) -> None:
        bar = state["bar"]
        if bar is None or bar.total != total or bar.unit != unit:
            if bar is not None:
                bar.close()
            bar = state["bar"] = tqdm(total=total, unit=f" {unit}", desc=description,
                                      file=sys.stderr, dynamic_ncols=True, leave=True)
            bar.unit = unit
        bar.n = done
        bar.refresh()

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    return callback, close


def parse_window(text: Optional[str]) -> Optional[tuple]:
    """``"LO,HI"`` -> (lo, hi) floats; the error names the option."""
    from ..engine.errors import ConfigError

    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--window {text!r}: expected two numbers LO,HI in HU") from None
    if not lo < hi:
        raise ConfigError(f"--window {text!r}: LO must be below HI")
    return lo, hi


def parse_floats(text: str, option: str, count: Optional[int] = None) -> List[float]:
    """``"A,B,..."`` -> floats (exactly ``count`` of them if given); the error names the option."""
    from ..engine.errors import ConfigError

    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated numbers") from None
    if count is not None and len(values) != count:
        raise ConfigError(f"{option} {text!r}: expected {count} numbers")
    return values


def add_command_group(subparsers, name: str, help_text: str):
    """``ctfoundation NAME ACTION ...``: a top-level command whose actions are sub-commands."""
    group = subparsers.add_parser(name, help=help_text)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions
