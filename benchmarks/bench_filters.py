"""Benchmark ``sepconv.filters.filter2d`` against OpenCV and scipy on 2048x2048 float32 images.

Interleaved in one run: for every kernel, each repeat times every variant once in a shuffled order; the
figures are medians over repeats and ratios of medians. Variants:

- ``sepconv``: ``filter2d(image, kernel)`` (automatic rank; engine and method chosen by the cost model)
- ``sepconv[cv2]``, ``sepconv[torch]``: the same with the engine forced (method still by the cost model)
- ``sepconv/ENGINE/METHOD``: engine and method forced (cv2/separable, cv2/direct, torch/separable, torch/direct,
  torch/fft; validates the cost model: does ``auto`` pick the fastest?)
- ``cv2.filter2D``: the 2D kernel as given
- ``cv2.sepFilter2D``: given the factors (one call per rank term, summed)
- ``scipy.correlate1d x2``: ``scipy.ndimage.correlate1d`` along each axis (per rank term, summed)
- ``scipy.correlate``: ``scipy.ndimage.correlate`` (few repeats: it is slow)

Usage::

    python benchmarks/bench_filters.py [--threads 1] [--repeats 9] [--sizes 3,5,9,15,25,31] [--kinds ...] [--quick]

Writes ``benchmarks/results/filters.json`` and ``filters.md`` (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import cv2
import scipy
from scipy import ndimage

import sepconv
from sepconv.filters import filter2d, plan
from sepconv.filters.named import box, gaussian

FORCED = ("cv2/separable", "cv2/direct", "torch/separable", "torch/direct", "torch/fft")


KINDS = {
    "gaussian": "named float64 Gaussian, sepconv.filters.get_kernel('gaussian:SIZE:SIGMA')",
    "gaussian-cv2-f32": "float32 Gaussian as OpenCV users build it: g = cv2.getGaussianKernel(SIZE, SIGMA, "
    "ktype=cv2.CV_32F); g @ g.T",
    "gaussian-cv2-f64": "cv2.getGaussianKernel(SIZE, SIGMA) (float64) outer product g @ g.T",
    "gaussian-torch-f32": "float32 Gaussian built in torch: g = exp(-x^2 / 2 sigma^2) / sum in float32; (g @ g.T)",
    "box": "named box (mean) filter",
    "rank2": "random rank-2 float64 kernel (fixed seed)",
    "rank3": "random rank-3 float64 kernel (fixed seed)",
    "full": "random full-rank float64 kernel (fixed seed)",
}


def _sigma(size: int) -> float:
    return max(size / 6, 0.5)


def make_kernel(kind: str, size: int) -> np.ndarray:
    """Kernels of the benchmark (see ``KINDS``): named ones, Gaussians built as users build them (float32 and
    float64 outer products), random rank 2 / 3 or full rank (fixed seed)."""
    if kind == "gaussian":
        return gaussian(size, _sigma(size)).numpy()
    if kind.startswith("gaussian-cv2"):
        g = cv2.getGaussianKernel(size, _sigma(size), ktype=cv2.CV_32F if kind.endswith("f32") else cv2.CV_64F)
        return g @ g.T
    if kind == "gaussian-torch-f32":
        x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-(x**2) / (2 * _sigma(size) ** 2))
        g = (g / g.sum())[:, None]
        return (g @ g.T).numpy()
    if kind == "box":
        return box(size).numpy()
    if kind == "full":  # random full-rank kernel: direct vs FFT
        return np.random.default_rng(size).standard_normal((size, size)) / size
    rank = int(kind[-1])
    rng = np.random.default_rng(size * 10 + rank)
    return sum(np.outer(rng.standard_normal(size), rng.standard_normal(size)) for _ in range(rank)) / size


def variants(image: np.ndarray, kernel: np.ndarray, full: bool) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (callable, repeats divisor); the slow scipy.correlate runs on fewer repeats."""
    p = plan(kernel, image.shape)
    columns = [c.astype(np.float32) for c in p.columns.numpy()]  # the factors sepconv found, given to the others
    rows = [r.astype(np.float32) for r in p.rows.numpy()]

    def cv_sep() -> np.ndarray:
        out = cv2.sepFilter2D(image, -1, rows[0], columns[0], borderType=cv2.BORDER_REFLECT)
        for c, r in zip(columns[1:], rows[1:]):
            out += cv2.sepFilter2D(image, -1, r, c, borderType=cv2.BORDER_REFLECT)
        return out

    def scipy_1d() -> np.ndarray:
        out = ndimage.correlate1d(ndimage.correlate1d(image, columns[0], 0, mode="reflect"), rows[0], 1, mode="reflect")
        for c, r in zip(columns[1:], rows[1:]):
            out += ndimage.correlate1d(ndimage.correlate1d(image, c, 0, mode="reflect"), r, 1, mode="reflect")
        return out

    k32 = kernel.astype(np.float32)
    table: dict[str, tuple[Callable[[], object], int]] = {
        "sepconv": (lambda: filter2d(image, kernel), 1),
        "sepconv[cv2]": (lambda: filter2d(image, kernel, engine="cv2"), 1),
        "sepconv[torch]": (lambda: filter2d(image, kernel, engine="torch"), 1),
        "cv2.filter2D": (lambda: cv2.filter2D(image, -1, k32, borderType=cv2.BORDER_REFLECT), 1),
        "cv2.sepFilter2D": (cv_sep, 1),
        "scipy.correlate1d x2": (scipy_1d, 1),
    }
    if full:
        table["scipy.correlate"] = (lambda: ndimage.correlate(image, k32, mode="reflect"), 0)
        for key in FORCED:
            engine, method = key.split("/")
            table[f"sepconv/{key}"] = (lambda e=engine, m=method: filter2d(image, kernel, method=m, engine=e), 3)
    return table


def time_interleaved(table: dict[str, tuple[Callable[[], object], int]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in table}
    for name, (fn, _) in table.items():  # warm-up
        if table[name][1] != 0:
            fn()
    for rep in range(repeats):
        order = list(table)
        random.shuffle(order)
        for name in order:
            fn, every = table[name]
            if every == 0 and rep > 0:  # scipy.correlate: once
                continue
            if every > 1 and rep % every:
                continue
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def machine() -> dict[str, object]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scipy": scipy.__version__,
        "sepconv": sepconv.__version__,
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
        "shared": "yes: other sessions were running on this 2-core machine; see the load averages",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and OpenCV (default 1)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--size", type=int, default=2048, help="image side")
    parser.add_argument("--sizes", default="3,5,9,15,25,31", help="kernel sizes")
    parser.add_argument("--kinds", default=",".join(k for k in KINDS if k != "full"),
                        help=f"comma-separated, from {', '.join(KINDS)} (default: all but full)")
    parser.add_argument("--name", default="filters", help="results file name (without extension)")
    parser.add_argument("--quick", action="store_true", help="skip scipy.correlate and the forced methods")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)

    default_threads = {"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()}
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    random.seed(0)
    rng = np.random.default_rng(0)
    image = rng.random((args.size, args.size), dtype=np.float32)
    info = machine()
    info.update(
        threads=f"torch {torch.get_num_threads()}, cv2 {cv2.getNumThreads()} (defaults here: torch "
        f"{default_threads['torch']}, cv2 {default_threads['cv2']}); scipy.ndimage is single-threaded",
        repeats=args.repeats,
        image=f"{args.size}x{args.size} float32",
    )
    results = []
    started = time.perf_counter()
    for kind in args.kinds.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            kernel = make_kernel(kind, size)
            p = plan(kernel, image.shape)
            times = time_interleaved(variants(image, kernel, not args.quick), args.repeats)
            medians = {name: statistics.median(ts) * 1e3 for name, ts in times.items() if ts}
            row = {
                "kind": kind,
                "size": size,
                "kernel_dtype": str(kernel.dtype),
                "rank": p.rank,
                "method": f"{p.engine}/{p.method}",
                "predicted_ns_per_pixel": {k: round(v, 2) for k, v in p.costs.items()},
                "median_ms": {k: round(v, 3) for k, v in medians.items()},
                "samples": {k: len(v) for k, v in times.items()},
            }
            ours = medians["sepconv"]
            row["speedup_vs"] = {k: round(v / ours, 3) for k, v in medians.items() if not k.startswith("sepconv")}
            forced = {m: medians[f"sepconv/{m}"] for m in FORCED if f"sepconv/{m}" in medians}
            if forced:
                best = min(forced, key=forced.__getitem__)
                row["fastest_method"] = best
                row["auto_loss"] = round(forced[f"{p.engine}/{p.method}"] / forced[best] - 1, 3)
            results.append(row)
            print(
                f"{kind:8s} {size:2d} rank {p.rank} {p.engine}/{p.method:9s} "
                + "  ".join(f"{k} {v:.1f}" for k, v in medians.items()),
                flush=True,
            )
    info["runtime_s"] = round(time.perf_counter() - started, 1)
    info["load_average_at_end"] = list(os.getloadavg())
    info["kinds"] = {kind: KINDS[kind] for kind in args.kinds.split(",")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name
    (out / f"{name}.json").write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(info, results))
    print(f"wrote {out / name}.json and .md in {info['runtime_s']} s")
    return 0


def markdown(info: dict[str, object], results: list[dict]) -> str:
    lines = [
        "# filter2d benchmark",
        "",
        "Recorded on a **shared** 2-core machine (other sessions were running; load average (1, 5, 15 min) at "
        f"start {info['load_average_at_start']}, at end {info['load_average_at_end']}): figures are medians of "
        "interleaved repeats, ratios of medians.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in info.items() if k != "kinds"],
        "",
        "Kernels: " + "; ".join(f"`{k}`: {v}" for k, v in info["kinds"].items()) + ".",
        "",
        "Median milliseconds per 2048x2048 float32 image (border reflect) and speed-up of sepconv "
        "(other / sepconv: > 1 means sepconv is faster). sepconv = `filter2d(image, kernel)` as a user calls it "
        "(engine and method by the cost model); sepconv[cv2] / sepconv[torch]: engine forced. Fastest forced: "
        "the fastest of the forced engine/method variants; auto loss: how much slower the cost model's choice was.",
        "",
        "| kernel | size | rank found | engine/method | sepconv ms | sepconv[cv2] ms | sepconv[torch] ms "
        "| cv2.filter2D ms (x) | cv2.sepFilter2D ms (x) | scipy.correlate1d x2 ms (x) | scipy.correlate ms (x) "
        "| fastest forced | auto loss |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        m, s = r["median_ms"], r["speedup_vs"]

        def cell(name: str, m: dict = m, s: dict = s) -> str:
            return f"{m[name]:.1f} ({s[name]:.2f}x)" if name in m else "-"

        loss = f"{r['auto_loss']:.0%}" if "auto_loss" in r else "-"
        lines.append(
            f"| {r['kind']} | {r['size']} | {r['rank']} | {r['method']} | {m['sepconv']:.1f} "
            f"| {m['sepconv[cv2]']:.1f} | {m['sepconv[torch]']:.1f} | {cell('cv2.filter2D')} "
            f"| {cell('cv2.sepFilter2D')} | {cell('scipy.correlate1d x2')} | {cell('scipy.correlate')} "
            f"| {r.get('fastest_method', '-')} | {loss} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
