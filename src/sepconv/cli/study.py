"""``sepconv study``: the accuracy-versus-cost trade-off of separable convs, measured on real data.

Example:
    >>> from sepconv.cli import main
    >>> main(["study", "--seeds", "0"])
    2
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys

from ..choices import DEFAULT_STUDY_VARIANTS, IMAGES_SEEN, MAX_AUTO_THREADS, MAX_EPOCHS, MIN_EPOCHS, STUDY_VARIANTS
from ..errors import ArgumentError
from ..study.config import StudyConfig
from ._table import print_table

# The study itself (and torch) loads in run(): the help and argument errors answer at once.

HELP = "train standard and separable variants of one network and compare accuracy, parameters, MACs, latency"


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ArgumentError(f"--widths must be comma-separated positive ints, got {text!r}") from err


def _auto_int(text: str) -> int | None:
    """An int, or ``None`` for ``auto``."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'auto', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = StudyConfig()
    parser.add_argument("--data", default=default.data,
                        help="digits (default, bundled) | mnist:DIR | cifar10:DIR | folder:DIR | npz:FILE")
    parser.add_argument("--out", default=str(default.out), help="run folder (default %(default)s)")
    parser.add_argument("--variants", default=",".join(DEFAULT_STUDY_VARIANTS),
                        help=f"comma-separated, from: {', '.join(STUDY_VARIANTS)} (default %(default)s)")
    parser.add_argument("--epochs", type=_auto_int, default=None, metavar="N|auto",
                        help=f"epochs per run (default auto: about {IMAGES_SEEN:,} training images seen, "
                             f"{MIN_EPOCHS} to {MAX_EPOCHS} epochs; 15 on digits)")
    parser.add_argument("--batch-size", type=int, default=default.batch_size,
                        help="global batch size (default %(default)s)")
    parser.add_argument("--lr", type=float, default=default.lr,
                        help="AdamW learning rate, cosine decay to 0 (default %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=default.weight_decay,
                        help="AdamW weight decay (default %(default)s)")
    parser.add_argument("--seeds", type=int, default=default.seeds,
                        help="runs per variant; accuracy is reported as mean ± std (default %(default)s)")
    parser.add_argument("--seed", type=int, default=default.seed, help="first seed (default %(default)s)")
    parser.add_argument("--widths", default=",".join(map(str, default.widths)),
                        help="stage widths of small_cnn (default %(default)s)")
    parser.add_argument("--stem", type=int, default=default.stem,
                        help="channels of the standard stem conv (default %(default)s)")
    parser.add_argument("--kernel-size", type=int, default=default.kernel_size,
                        help="odd conv kernel size (default %(default)s)")
    parser.add_argument("--latency-reps", type=int, default=default.latency_reps,
                        help="interleaved timing rounds, median reported (default %(default)s)")
    parser.add_argument("--convert-budget", type=float, default=default.convert_budget,
                        help="MAC budget of the 'convert' variant relative to standard, in (0, 1] "
                             "(default %(default)s)")
    parser.add_argument("--finetune-epochs", type=_auto_int, default=None, metavar="N|auto",
                        help="distillation epochs after the conversion (default auto: a third of --epochs)")
    parser.add_argument("--threads", type=_auto_int, default=None, metavar="N|auto",
                        help=f"torch CPU threads (default auto: 1 for images under 16x16, else the cores, at most "
                             f"{MAX_AUTO_THREADS})")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                        help="where to train and time (default auto: a GPU when torch sees one)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision: bfloat16 autocast (float16 with loss scaling on older GPUs)")
    parser.add_argument("--estimate", action="store_true",
                        help="print the automatic choices and the expected training time, train nothing")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--json", action="store_true", help="print results.json instead of the table")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the study in --out, keep finished runs")
    group.add_argument("--overwrite", action="store_true", help="delete the study in --out and start over")


def build_defaults(**overrides: object) -> argparse.Namespace:
    """The parsed default arguments of ``sepconv study``, with ``overrides`` (what ``sepconv demo`` runs)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """A checked :class:`StudyConfig` from parsed arguments."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    return StudyConfig(data=args.data, out=args.out, variants=variants, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, seeds=args.seeds,
                       seed=args.seed, widths=_int_list(args.widths), stem=args.stem, kernel_size=args.kernel_size,
                       latency_reps=args.latency_reps, convert_budget=args.convert_budget,
                       finetune_epochs=args.finetune_epochs, plots=not args.no_plots, resume=args.resume,
                       overwrite=args.overwrite, threads=args.threads, device=args.device, amp=args.amp).check()


def print_results(results: dict) -> None:
    """Print the results table (whole at any terminal width: a vertical layout where it does not fit)."""
    from ..study.report import table_rows

    header, rows = table_rows(results["summary"])
    print_table(f"sepconv study — {results['data']['summary']}", header, rows)


def run(args: argparse.Namespace) -> int:
    from ..study import plan_study, run_study
    from ..study.report import finite

    config = config_from_args(args)
    if args.estimate:
        print(plan_study(config)["text"])
        return 0
    rank = int(os.environ.get("RANK", "0"))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        results = run_study(config, log=log)
    except KeyboardInterrupt:
        if rank == 0:
            print(f"sepconv study: interrupted; finished runs and the last epoch checkpoints are in {config.out}; "
                  f"continue with --resume", file=sys.stderr)
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # one line from sepconv.cli.main
    except OSError as err:
        where = err.filename or config.out
        problem = "no space left on the device" if err.errno in (errno.ENOSPC, errno.EDQUOT) else err.strerror
        print(f"sepconv study: {problem} writing {where}; the files already written are intact (every write is "
              f"atomic): fix that and continue with --resume", file=sys.stderr)
        return 1
    if rank == 0:
        if args.json:
            print(json.dumps(finite(results), indent=1, allow_nan=False))
        else:
            print_results(results)
            print(f"report: {os.path.join(str(config.out), 'report.md')}; plots: "
                  f"{', '.join(results.get('plots', {}).values()) or 'none'}")
    return 0
