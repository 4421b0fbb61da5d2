"""``sepconv demo``: the main job on the embedded default data (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from . import factor, seeds

HELP = "run the main job on the embedded default data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    status = seeds.run(args)
    print()
    return status or factor.run(argparse.Namespace(kernel="sobel", rank=None, rtol=None, plot=None))
