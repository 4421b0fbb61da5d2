"""The ``sepconv`` command line: one module per subcommand, discovered automatically.

Each module ``sepconv/cli/<name>.py`` (no leading underscore) defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. User errors (:class:`sepconv.SepConvError`,
``FileNotFoundError``) print one line on stderr and exit with status 2, never a traceback.

Example:
    >>> from sepconv.cli import main
    >>> main(["--version"])  # doctest: +ELLIPSIS
    sepconv ...
    0
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import SepConvError


class UsageError(SepConvError):
    """A command-line argument is invalid."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("sepconv").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def _commands() -> dict[str, object]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return {name.replace("_", "-"): importlib.import_module(f"{__name__}.{name}") for name in names}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every discovered subcommand."""
    parser = _Parser(prog="sepconv", description="Separable convolutions: build, factor, convert, measure.")
    parser.add_argument("--version", action="version", version=f"sepconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in _commands().items():
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)  # type: ignore[attr-defined]
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return int(args._run(args) or 0)
    except SystemExit as exit_:  # --help and --version
        return int(exit_.code or 0)
    except (SepConvError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"sepconv: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sepconv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sepconv cost --model ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
