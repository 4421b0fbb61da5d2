"""``sepconv bench``: time separable layers against the standard conv, PyTorch compositions and ONNX Runtime."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import TYPE_CHECKING

from .._files import atomic_write_text
from ..errors import ArgumentError
from ..study.bench_summary import explain, label
from ._table import print_table

if TYPE_CHECKING:
    from ..study.bench import Case

HELP = "benchmark separable layers on CPU: realized vs theoretical speedups (table and JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="two small shapes, batch 1 (a smoke run)")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved rounds per case (default 30; the full "
                        "suite takes a few minutes, printed before it starts)")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument("--json", metavar="PATH", help="also write the full results as JSON (atomically)")


def write_json(data: dict, path: str) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArgumentError(f"--json: directory {folder!r} does not exist")
    from ..study.report import finite

    atomic_write_text(path, json.dumps(finite(data), indent=2, allow_nan=False))


def render(report: dict) -> None:
    """Print the cases, spatial cases, end-to-end and summary tables (those with finished cases)."""
    if report["cases"]:
        rows = [(f"{r['in']}->{r['out']} @{r['size']} s{r['stride']} b{r['batch']}", f"{r['mac_ratio']:.1f}x",
                 *(_ms(r["median_ms"].get(k)) for k in ("standard", "standard_prepacked", "plain",
                                                                            "channels_last", "onnxruntime", "sepconv")),
                 f"{r['speedup_sepconv']:.2f}x", f"{r['fraction_of_mac_ratio']:.0%}",
                 f"{r['fraction_vs_prepacked_standard']:.0%}", f"{r['depthwise_gbps']:.1f}")
                for r in report["cases"]]
        print_table("depthwise separable 3x3 (median ms)", ("case", "MAC ratio", "standard", "std prepacked",
                    "plain NCHW", "channels_last", "ORT", "sepconv", "speedup", "of MAC ratio", "vs prepacked",
                    "dw GB/s"), rows)
    if report["spatial"]:
        print_table("spatially separable vs kxk (median ms)", ("case", "MAC ratio", "kxk", "kx1+1xk", "speedup"),
                    [(f"{r['in']}->{r['out']} @{r['size']} k{r['kernel']} b{r['batch']}", f"{r['mac_ratio']:.2f}x",
                      f"{min(r['median_ms'][k] for k in ('standard_nchw', 'standard_cl', 'standard_prepacked')):.3f}",
                      f"{min(r['median_ms']['spatial_nchw'], r['median_ms']['spatial_cl']):.3f}",
                      f"{r['speedup']:.2f}x") for r in report["spatial"]])
    e2e = report["end_to_end"]
    if e2e:
        print_table("end to end, batch 1 (median ms)", ("model", "plain NCHW", "sepconv fused", "speedup"),
                    [(e2e["model"], f"{e2e['median_ms']['plain_nchw']:.2f}", f"{e2e['median_ms']['sepconv']:.2f}",
                      f"{e2e['speedup']:.2f}x")])
    print_table("summary (geometric means over the cases)", ("figure", "value"),
                [(label(k), f"{v:.3f}" if isinstance(v, float) else v) for k, v in report["summary"].items()])
    for line in explain(report["summary"]):
        print(f"- {line}")
    if report.get("interrupted"):
        print("(interrupted: the tables hold the cases that finished)")


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _case_line(index: int, total: int, case: Case, row: dict, seconds: float) -> str:
    """One line per finished case: its headline figure and how long it took."""
    if case.kind == "depthwise_separable":
        figure = (f"sepconv {row['median_ms']['sepconv']:.3f} ms vs standard {row['median_ms']['standard']:.3f} ms: "
                  f"{row['speedup_sepconv']:.2f}x faster for {row['mac_ratio']:.1f}x fewer MACs")
    elif case.kind == "spatially_separable":
        figure = f"{row['speedup']:.2f}x vs the k x k conv for {row['mac_ratio']:.2f}x fewer MACs"
    elif case.kind == "end_to_end":
        figure = f"sepconv fused {row['speedup']:.2f}x vs plain PyTorch"
    else:
        figure = f"{row['copy_bandwidth_gbps']:.1f} GB/s"
    return f"[{index}/{total}] {case.label}: {figure} ({seconds:.1f} s)"


def _progress():  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr, or None when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    return Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=True)


def _run_suite(cases: list[Case], repeats: int, onnx: bool) -> tuple[list[tuple[Case, dict]], bool]:
    """Run the cases with a progress bar, one line per finished case; ``(finished, interrupted)``."""
    from ..study.bench import iter_benchmarks

    finished: list[tuple[Case, dict]] = []
    bar = _progress()
    with bar if bar is not None else contextlib.nullcontext():
        task = bar.add_task("bench", total=sum(c.work() for c in cases)) if bar is not None else None
        try:
            for case, row, seconds in iter_benchmarks(cases, repeats, onnx):
                finished.append((case, row))
                line = _case_line(len(finished), len(cases), case, row, seconds)
                if bar is not None:
                    bar.console.print(line, markup=False, highlight=False)
                    bar.advance(task, case.work())
                else:
                    print(line, flush=True)
        except KeyboardInterrupt:
            return finished, True
    return finished, False


def run(args: argparse.Namespace) -> int:
    import torch  # the study's modules and torch load here, not when the CLI parses (sepconv --help stays fast)

    from ..study.bench import build_report, check_arguments, expected_seconds, plan_cases
    from ..study.budget import available_cores, format_seconds

    for name, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise ArgumentError(f"{name} must be >= 1, got {value}")
    if args.batch and min(args.batch) < 1:
        raise ArgumentError(f"--batch must be >= 1, got {min(args.batch)}")
    if args.threads is not None and args.threads > available_cores():
        raise ArgumentError(f"--threads must be at most {available_cores()} (the CPU cores this process may use), "
                            f"got {args.threads}")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise ArgumentError(f"--json: directory {folder!r} does not exist")
    repeats, batches = check_arguments(args.repeats, tuple(args.batch or (1, 8)))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    cases = plan_cases(args.quick, batches)
    print(f"sepconv bench: {len(cases)} cases x {repeats} interleaved rounds on {torch.get_num_threads()} thread(s); "
          f"expected about {format_seconds(expected_seconds(cases, repeats, not args.no_onnx))} (a cost model "
          f"calibrated by a probe; load average {load[0]:.1f}); Ctrl-C stops and keeps the finished cases",
          flush=True)
    finished, interrupted = _run_suite(cases, repeats, not args.no_onnx)
    report = build_report(finished, repeats, load, interrupted=interrupted)
    render(report)
    if args.json:
        write_json(report, args.json)
        print(f"results: {args.json}" + (" (the finished cases)" if interrupted else ""))
    return 130 if interrupted else 0
