"""``sepconv demo``: the main job on the embedded default data (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from . import seeds

HELP = "run the main job on the embedded default data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    return seeds.run(args)
