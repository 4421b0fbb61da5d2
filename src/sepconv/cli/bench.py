"""``sepconv bench``: time separable layers against the standard conv, PyTorch compositions and ONNX Runtime."""

from __future__ import annotations

import argparse
import json
import os

from .._files import atomic_write_text
from ..errors import ArgumentError

HELP = "benchmark separable layers on CPU: realized vs theoretical speedups (table and JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="two small shapes, batch 1 (a smoke run)")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved rounds per case (default 30)")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    parser.add_argument("--json", metavar="PATH", help="also write the full results as JSON (atomically)")


def write_json(data: dict, path: str) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ArgumentError(f"--json: directory {folder!r} does not exist")
    atomic_write_text(path, json.dumps(data, indent=2))


def render(report: dict) -> None:
    """Print the cases, spatial cases, end-to-end and summary tables."""
    from ._table import print_table

    rows = [(f"{r['in']}->{r['out']} @{r['size']} s{r['stride']} b{r['batch']}", f"{r['mac_ratio']:.1f}x",
             *(f"{r['median_ms'].get(k, float('nan')):.3f}" for k in ("standard", "standard_prepacked", "plain",
                                                                        "channels_last", "onnxruntime", "sepconv")),
             f"{r['speedup_sepconv']:.2f}x", f"{r['fraction_of_mac_ratio']:.0%}",
             f"{r['fraction_vs_prepacked_standard']:.0%}", f"{r['depthwise_gbps']:.1f}")
            for r in report["cases"]]
    print_table("depthwise separable 3x3 (median ms)", ("case", "MAC ratio", "standard", "std prepacked",
                "plain NCHW", "channels_last", "ORT", "sepconv", "speedup", "of MAC ratio", "vs prepacked",
                "dw GB/s"), rows)
    print_table("spatially separable vs kxk (median ms)", ("case", "MAC ratio", "kxk", "kx1+1xk", "speedup"),
                [(f"{r['in']}->{r['out']} @{r['size']} k{r['kernel']} b{r['batch']}", f"{r['mac_ratio']:.2f}x",
                  f"{min(r['median_ms'][k] for k in ('standard_nchw', 'standard_cl', 'standard_prepacked')):.3f}",
                  f"{min(r['median_ms']['spatial_nchw'], r['median_ms']['spatial_cl']):.3f}",
                  f"{r['speedup']:.2f}x") for r in report["spatial"]])
    e2e = report["end_to_end"]
    print_table("end to end, batch 1 (median ms)", ("model", "plain NCHW", "sepconv fused", "speedup"),
                [(e2e["model"], f"{e2e['median_ms']['plain_nchw']:.2f}", f"{e2e['median_ms']['sepconv']:.2f}",
                  f"{e2e['speedup']:.2f}x")])
    print_table("summary (geometric means)", ("figure", "value"),
                [(k, f"{v:.3f}" if isinstance(v, float) else v) for k, v in report["summary"].items()])


def run(args: argparse.Namespace) -> int:
    import torch

    from ..study.bench import run_benchmarks

    if args.repeats < 1:
        raise ArgumentError(f"--repeats must be >= 1, got {args.repeats}")
    if args.batch and min(args.batch) < 1:
        raise ArgumentError(f"--batch must be >= 1, got {min(args.batch)}")
    if args.threads is not None:
        if args.threads < 1:
            raise ArgumentError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise ArgumentError(f"--json: directory {folder!r} does not exist")
    report = run_benchmarks(quick=args.quick, repeats=args.repeats, batches=tuple(args.batch or (1, 8)),
                            onnx=not args.no_onnx)
    render(report)
    if args.json:
        write_json(report, args.json)
    return 0
