"""``ctfoundation`` command line: a thin caller of the engine.

Each module in this package that defines ``register(subparsers)`` adds its
own subcommands, so a new command group is one new file here. Every command
turns a :class:`CTFoundationError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from typing import List, Optional

from ..engine.errors import CTFoundationError
from ._common import CLIArgumentParser

# Where a warning comes from our own code (module attribution or category).
OWN_MODULES = r"napari_ctfoundation(\.|$)"


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = CLIArgumentParser(
        prog="ctfoundation",
        description="Foundation-VAE CT reconstruction, generation and sparse-view CBCT.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_only_own_warnings()
    try:
        return int(args.func(args) or 0)
    except CTFoundationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def show_only_own_warnings() -> None:
    """Our warnings as one ``warning: ...`` line each; dependencies' warnings hidden.

    Deprecation notices from itk's SWIG modules, torch or diffusers are not
    the user's business. ``-W``/``PYTHONWARNINGS`` still win, for developers.
    """
    from ..engine.io import CTFoundationWarning

    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    if sys.warnoptions:
        return
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=OWN_MODULES)
    warnings.filterwarnings("default", category=CTFoundationWarning)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
