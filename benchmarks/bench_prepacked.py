"""Where oneDNN's prepacked call pays (sepconv.prepacked): standard convs and linears of several sizes, PyTorch's
own layer against its prepacked twin, interleaved in one process, medians. Not a test.

Sets the break-even sizes ``MIN_CONV_MACS`` and ``MIN_LINEAR_MACS`` of ``sepconv.prepacked``: below them the fixed
cost of the oneDNN call (15-30 µs) exceeds what the prepacked weights save.

Usage: ``python benchmarks/bench_prepacked.py [--threads 1] [--repeats 300]``; writes
``benchmarks/results/prepacked.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch
from torch import nn

from sepconv import prepacked
from sepconv.study.bench import machine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cpu_inference import interleaved, save

# (in, out, size, kernel, stride, input layout): channels_last inside an optimized model; the user's NCHW image
# for the first layer
CONVS = [(1, 32, 8, 3, 1, "cl"), (32, 64, 8, 3, 1, "cl"), (64, 64, 4, 3, 1, "cl"), (3, 16, 28, 3, 1, "cl"),
         (16, 32, 28, 3, 1, "cl"), (32, 64, 14, 3, 1, "cl"), (64, 128, 14, 3, 1, "cl"), (256, 256, 14, 1, 1, "cl"),
         (128, 128, 28, 3, 1, "cl"), (3, 32, 224, 3, 2, "cl"), (3, 32, 224, 3, 2, "nchw"), (1, 32, 28, 3, 1, "nchw")]
LINEARS = [(1, 64, 10), (64, 64, 10), (1, 128, 128), (64, 512, 10), (1, 1024, 1000), (1, 2048, 1000),
           (8, 1024, 1000)]


def _row(case: str, macs: int, fns: dict, repeats: int) -> dict:
    us = {k: v * 1e6 for k, v in interleaved(fns, repeats).items()}
    row = {"case": case, "macs": macs, "us": us, "prepacked_speedup": us["own forward"] / us["prepacked"]}
    print(f"  {case}: " + ", ".join(f"{k} {v:.1f} µs" for k, v in us.items()), flush=True)
    return row


def convs(repeats: int) -> list[dict]:
    rows = []
    for cin, cout, size, k, stride, layout in CONVS:
        conv = nn.Conv2d(cin, cout, k, stride, k // 2).eval().to(memory_format=torch.channels_last)
        fast = prepacked.prepack(copy.deepcopy(conv))
        x = torch.randn(1, cin, size, size)
        if layout == "cl":
            x = x.contiguous(memory_format=torch.channels_last)
        macs = cin * cout * k * k * (-(-size // stride)) ** 2
        floor = prepacked.MIN_CONV_MACS
        prepacked.MIN_CONV_MACS = 0  # time the prepacked call at every size
        try:
            rows.append(_row(f"conv {cin}->{cout} k{k} s{stride} @{size}{' NCHW input' * (layout == 'nchw')}", macs,
                             {"own forward": lambda c=conv, x=x: c(x), "prepacked": lambda f=fast, x=x: f(x)},
                             repeats))
        finally:
            prepacked.MIN_CONV_MACS = floor
    return rows


def linears(repeats: int) -> list[dict]:
    rows = []
    for batch, fin, fout in LINEARS:
        linear = nn.Linear(fin, fout).eval()
        fast = prepacked.prepack(copy.deepcopy(linear))
        x = torch.randn(batch, fin)
        floor = prepacked.MIN_LINEAR_MACS
        prepacked.MIN_LINEAR_MACS = 0
        try:
            rows.append(_row(f"linear b{batch} {fin}->{fout}", batch * fin * fout,
                             {"own forward": lambda m=linear, x=x: m(x), "prepacked": lambda f=fast, x=x: f(x)},
                             repeats))
        finally:
            prepacked.MIN_LINEAR_MACS = floor
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# Where the prepacked oneDNN call pays (sepconv.prepacked)", "",
             f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, {report['threads']} thread(s), "
             f"{report['repeats']} interleaved rounds, medians; {m['date']}; load average before "
             f"{report['load_before']}. Channels_last weights for both (as `sepconv.optimize` stores them), "
             "channels_last inputs unless marked (the user's image reaches the first layer in NCHW).",
             "", f"Break-even used: convs from {report['min_conv_macs']:,} multiply-adds, linears from "
             f"{report['min_linear_macs']:,}.", "",
             "| layer | multiply-adds | own forward µs | prepacked µs | prepacked speedup |",
             "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['case']} | {r['macs']:,} | {r['us']['own forward']:.1f} | {r['us']['prepacked']:.1f} | "
              f"{r['prepacked_speedup']:.2f}x |" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = [round(v, 2) for v in os.getloadavg()]
    report = {"threads": args.threads, "repeats": args.repeats, "load_before": load,
              "min_conv_macs": prepacked.MIN_CONV_MACS, "min_linear_macs": prepacked.MIN_LINEAR_MACS,
              "rows": convs(args.repeats) + linears(args.repeats), "machine": machine()}
    save("prepacked", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
