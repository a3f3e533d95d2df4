"""Small helpers shared by the CLI command modules."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable, List, Optional

# "-160,240", "-1e5", "-.5,1": values, not options. argparse (before 3.13)
# only takes "-5" or "-.5" as a value, so `--window -160,240` failed. Any
# token that starts like a negative number is a value, so a typo such as
# "-160,240x" reaches the option's own parser and its clear message.
NEGATIVE_NUMBERS = re.compile(r"^-\.?\d")


class CLIArgumentParser(argparse.ArgumentParser):
    """ArgumentParser that reads a negative number or list of numbers as a value.

    Sub-parsers inherit the class (``add_subparsers`` uses the parent's type),
    so every option that takes numbers accepts ``--window -160,240`` as typed.
    None of our options is spelt like a negative number, which is the case
    argparse needs for this to be unambiguous.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBERS


def progress_bar(description: str) -> tuple:
    """A tqdm bar on stderr and the engine callback that drives it.

    Returns ``(callback, close)``. The bar's unit follows what the engine
    reports (slices, views, steps, cases).
    """
    from tqdm import tqdm

    state: dict = {"bar": None, "key": None}

    def callback(done: int, total: int, unit: str) -> None:
        bar = state["bar"]
        if bar is None or state["key"] != (total, unit):
            if bar is not None:
                bar.close()
            # total 0: a phase without a count (loading a model): its name and the time.
            counted = {} if total else {"bar_format": "{desc}: " + unit.replace("{", "{{").replace("}", "}}")
                                        + " ({elapsed})"}
            bar = state["bar"] = tqdm(total=total or None, unit=f" {unit}", desc=description,
                                      file=sys.stderr, dynamic_ncols=True, leave=True, **counted)
            state["key"] = (total, unit)
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


def check_output_path(path, **kwargs):
    """:func:`engine.io.check_output_path`, imported when called so ``--help`` stays light."""
    from ..engine.io import check_output_path as check

    return check(path, **kwargs)


def add_command_group(subparsers, name: str, help_text: str):
    """``ctfoundation NAME ACTION ...``: a top-level command whose actions are sub-commands."""
    group = subparsers.add_parser(name, help=help_text)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions
