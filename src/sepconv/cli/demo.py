"""``sepconv demo``: the main job on the embedded default data (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from . import factor, seeds, study

HELP = "run the main job on the embedded default data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder of the study (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    status = seeds.run(args)
    print()
    status = status or factor.run(argparse.Namespace(kernel="sobel", rank=None, rtol=None, plot=None))
    if status:
        return status
    print()
    study_args = study.build_defaults(out=args.out, overwrite=True)
    return study.run(study_args)
