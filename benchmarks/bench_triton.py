"""Benchmark the fused Triton depthwise-separable kernel against cuDNN and PyTorch on the MobileNet v1 layers.

For every MobileNet v1 (224x224) depthwise-separable layer, batch size and dtype it times, interleaved and with
CUDA events, the median of:

- ``cudnn_standard``: the standard k x k conv the separable layer replaces (cuDNN, channels_last) + bias + ReLU;
- ``torch_dw_pw``: PyTorch's two-kernel composition, depthwise conv (+ folded BN bias) + ReLU, 1x1 conv + bias
  + ReLU, channels_last;
- ``torch_compile``: ``torch.compile`` of that composition;
- ``fused``: the prepared launch (:class:`sepconv.backends.triton.Launch`, as a frozen layer keeps it) with the
  same epilogues.

Two times per variant: device time (``triton.testing.do_bench``: L2 flushed before every call, CUDA events,
median; interleaved rounds), on which the ratios are computed, and the eager call with its host overhead (events
around one call, inputs rotating through copies larger than twice the L2 cache). For the fused
kernel it reports the achieved HBM bandwidth (bytes of input + output + weights over the time) and the fraction
of the roofline floor (those bytes over the copy bandwidth measured in the same run). It checks the fused output
against the PyTorch composition before timing. Results go to ``benchmarks/results/`` as Markdown and JSON with
the device and versions.

Usage (a CUDA device and Triton are required)::

    python benchmarks/bench_triton.py                       # everything: fp16+bf16, batch 1/32/256
    python benchmarks/bench_triton.py --dtype fp16 --batch 32 --no-compile --repeats 20   # quick look
    python benchmarks/bench_triton.py --configs tuned.json      # with a tune_triton.py result
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time as _time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

# (input size, in channels, out channels, stride) of the 13 depthwise-separable layers of MobileNet v1 at 224.
MOBILENET_V1 = [
    (112, 32, 64, 1), (112, 64, 128, 2), (56, 128, 128, 1), (56, 128, 256, 2), (28, 256, 256, 1),
    (28, 256, 512, 2), (14, 512, 512, 1), (14, 512, 512, 1), (14, 512, 512, 1), (14, 512, 512, 1),
    (14, 512, 512, 1), (14, 512, 1024, 2), (7, 1024, 1024, 1),
]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
VARIANTS = ("cudnn_standard", "torch_dw_pw", "torch_compile", "fused")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp16", "bf16"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 32, 256])
    p.add_argument("--layers", nargs="+", type=int, default=list(range(len(MOBILENET_V1))),
                   help="indices into the 13 MobileNet v1 layers (default: all)")
    p.add_argument("--kernel-size", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=50, help="timed eager calls per variant (interleaved)")
    p.add_argument("--gpu-rounds", type=int, default=5, help="interleaved do_bench rounds per variant")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (compiling every shape is slow)")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs",
                   help="torch.compile mode ('default', 'max-autotune-no-cudagraphs', ...)")
    p.add_argument("--compile-budget-s", type=float, default=float("inf"),
                   help="stop compiling new shapes after this many seconds (later cases report n/a)")
    p.add_argument("--configs", type=Path, help="a tune_triton.py result to use instead of triton_configs.py")
    p.add_argument("--precision", choices=("ieee", "tf32", "tf32x3"), default="tf32", help="fp32 only")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def l2_bytes() -> int:
    props = torch.cuda.get_device_properties(0)
    return int(getattr(props, "L2_cache_size", 0) or 64 * 2**20)


def copy_bandwidth(nbytes: int = 2**30, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write counted), median of ``repeats``."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    times = time_calls([lambda: dst.copy_(src)], warmup=3, repeats=repeats)[0]
    return 2 * nbytes / statistics.median(times)


def gpu_times(fns: list[Callable[[], object]], rounds: int, rep_ms: float = 10.0) -> list[float]:
    """Device time per call of each ``fn``: ``triton.testing.do_bench`` (L2 flushed before every call, CUDA events,
    median), interleaved over ``rounds`` rounds; the median over the rounds. Host overhead is hidden behind the
    flush, so this is what the GPU spends (what a CUDA graph replay would cost)."""
    from triton.testing import do_bench

    out: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            out[i].append(do_bench(fn, warmup=1, rep=rep_ms, return_mode="median") / 1e3)
    return [statistics.median(t) for t in out]


def time_calls(fns: list[Callable[[], object]], warmup: int, repeats: int) -> list[list[float]]:
    """Seconds per call of each ``fn``, interleaved round-robin, timed with CUDA events."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            out[i].append(start.elapsed_time(end) / 1e3)
    return out


class Rotating:
    """Cycle through copies of the input whose total size exceeds twice the L2 cache."""

    def __init__(self, x: torch.Tensor, l2: int) -> None:
        copies = max(2, math.ceil(2 * l2 / (x.numel() * x.element_size())) + 1)
        self.items = [x.clone(memory_format=torch.channels_last) for _ in range(min(copies, 64))]
        self.i = 0

    def next(self) -> torch.Tensor:
        self.i = (self.i + 1) % len(self.items)
        return self.items[self.i]


def layer_case(size: int, cin: int, cout: int, stride: int, k: int, batch: int, dtype: torch.dtype,
               dev: str = "cuda") -> dict:
    """Random input (channels_last), depthwise/pointwise weights and biases, and the standard k x k weight."""
    x = torch.randn(batch, cin, size, size, device=dev, dtype=dtype).to(memory_format=torch.channels_last)
    return {
        "x": x,
        "dw": (torch.randn(cin, 1, k, k, device=dev) / k).to(dtype),
        "dw_b": torch.randn(cin, device=dev).to(dtype),
        "pw": (torch.randn(cout, cin, 1, 1, device=dev) / cin**0.5).to(dtype).to(memory_format=torch.channels_last),
        "pw_b": torch.randn(cout, device=dev).to(dtype),
        "std": (torch.randn(cout, cin, k, k, device=dev) / (cin * k * k) ** 0.5).to(dtype)
        .to(memory_format=torch.channels_last),
    }


def torch_dw_pw(x, dw, dw_b, pw, pw_b, stride: int, pad: int):
    """PyTorch's two-kernel composition (symmetric padding, as torchvision's MobileNet: no extra pad kernel)."""
    mid = F.relu(F.conv2d(x, dw, dw_b, stride, pad, 1, x.shape[1]))
    return F.relu(F.conv2d(mid, pw, pw_b))


def run(args: argparse.Namespace) -> int:
    from sepconv.backends import triton as K

    l2 = l2_bytes()
    bw = copy_bandwidth()
    props = torch.cuda.get_device_properties(0)
    meta = {
        "device": props.name, "sm_count": props.multi_processor_count, "l2_bytes": l2,
        "copy_bandwidth_GBps": bw / 1e9, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "triton": __import__("triton").__version__,
        "python": platform.python_version(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "warmup": args.warmup, "repeats": args.repeats, "kernel_size": args.kernel_size,
    }
    print(f"# {props.name}: L2 {l2 / 2**20:.0f} MiB, copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    torch.backends.cudnn.benchmark = True
    meta["compile_mode"] = None if args.no_compile else args.compile_mode
    compiled = None if args.no_compile else torch.compile(torch_dw_pw, dynamic=False, mode=args.compile_mode)
    if compiled is not None:
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
    if args.configs is not None:
        from sepconv.backends import triton_configs

        tuned = json.loads(args.configs.read_text())
        triton_configs.CONFIGS.update({k: tuple(v) for k, v in tuned["configs"].items()})
        meta["configs"] = f"{args.configs.name}: {len(tuned['configs'])} tuned geometries ({tuned['meta']['device']})"
    else:
        from sepconv.backends import triton_configs

        meta["configs"] = f"triton_configs.py: {len(triton_configs.CONFIGS)} geometries ({triton_configs.DEVICE})"
    compile_spent = 0.0
    compiled_shapes: set[tuple] = set()
    k = args.kernel_size
    rows = []
    for dname in args.dtype:
        dtype = DTYPES[dname]
        for batch in args.batch:
            for li in args.layers:
                size, cin, cout, stride = MOBILENET_V1[li]
                c = layer_case(size, cin, cout, stride, k, batch, dtype)
                pad = k // 2
                rot = Rotating(c["x"], l2)
                # operands prepared once, as SeparableConv2d's dispatch caches them (sepconv.backends.dispatch)
                wdw, shift = K.fold_depthwise(c["dw"], c["dw_b"], None, None)
                wpw = c["pw"].reshape(cout, cin).t().contiguous()
                pw_b = c["pw_b"].float()

                prepared = K.Launch(c["x"], wdw, shift, wpw, pw_b, (k, k), stride, pad, "relu", "relu",
                                    args.precision)  # as a frozen layer's ticket keeps it

                def fused(rot=rot, prepared=prepared):
                    return prepared(rot.next())

                fns = {
                    "cudnn_standard": lambda c=c, stride=stride, rot=rot, pad=pad: F.relu(
                        F.conv2d(rot.next(), c["std"], c["pw_b"], stride, pad)),
                    "torch_dw_pw": lambda c=c, stride=stride, rot=rot, pad=pad: torch_dw_pw(
                        rot.next(), c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad),
                    "fused": fused,
                }
                shape_key = (dname, batch, size, cin, cout, stride)
                if compiled is not None and (shape_key in compiled_shapes or compile_spent < args.compile_budget_s):
                    fns["torch_compile"] = lambda c=c, stride=stride, rot=rot, pad=pad: compiled(
                        rot.next(), c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad)
                    t0 = _time.monotonic()
                    try:
                        fns["torch_compile"]()
                        torch.cuda.synchronize()
                        compiled_shapes.add(shape_key)
                    except Exception as err:  # a failed compile is reported, not fatal
                        print(f"torch.compile failed on layer {li}: {type(err).__name__}: {str(err)[:200]}",
                              flush=True)
                        del fns["torch_compile"]
                    compile_spent += _time.monotonic() - t0
                ref = torch_dw_pw(c["x"], c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad).float()
                reason = K.unsupported_reason(c["x"], c["dw"], c["pw"], c["dw_b"], c["pw_b"], stride, pad)
                if reason is not None:
                    print(f"bench_triton: layer {li} not supported by the fused kernel: {reason}", file=sys.stderr)
                    return 1
                got = prepared(c["x"]).float()
                err = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
                names = list(fns)
                times = dict(zip(names, time_calls([fns[n] for n in names], args.warmup, args.repeats)))
                eager = {n: statistics.median(t) for n, t in times.items()}
                med = dict(zip(names, gpu_times([fns[n] for n in names], args.gpu_rounds)))
                ho = -(-size // stride)
                nbytes = (c["x"].numel() + batch * cout * ho * ho + c["dw"].numel() + c["pw"].numel()
                          + cin + cout) * c["x"].element_size()
                row = {
                    "dtype": dname, "batch": batch, "layer": li, "size": size, "cin": cin, "cout": cout,
                    "stride": stride, "rel_err": err, "median_s": med, "eager_s": eager, "bytes": nbytes,
                    "fused_GBps": nbytes / med["fused"] / 1e9, "roofline_fraction": nbytes / bw / med["fused"],
                }
                rows.append(row)
                line = "  ".join(f"{n} {med[n] * 1e6:7.1f}us ({eager[n] * 1e6:.0f})" for n in names)
                print(f"{dname} b={batch:<3} L{li:<2} {size}x{size} {cin}->{cout} s{stride}  {line}  "
                      f"fused {row['fused_GBps']:.0f} GB/s ({row['roofline_fraction']:.0%} roofline) "
                      f"err {err:.1e}", flush=True)
                meta["compile_seconds"] = round(compile_spent, 1)
                write(args.out, meta, rows, quiet=True)  # after every case: a run stopped early keeps its rows
    write(args.out, meta, rows)
    print("\n".join(summary(rows)))
    return 0


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows: list[dict]) -> list[str]:
    """Geometric means of the speed-ups of the fused kernel, on device time and on eager calls (host included)."""
    others = ("torch_dw_pw", "torch_compile", "cudnn_standard")
    lines = ["| dtype | batch | " + " | ".join(f"fused vs {o}" for o in others)
             + " | eager: fused vs torch_dw_pw | median roofline fraction |", "| --- | --- |" + " --- |" * 5]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dtype"], r["batch"]), []).append(r)
    for (dname, batch), rs in groups.items():
        ratios = []
        for field, names in (("median_s", others), ("eager_s", ("torch_dw_pw",))):
            for other in names:
                vals = [r[field][other] / r[field]["fused"] for r in rs if other in r[field]]
                ratios.append(f"{geomean(vals):.2f}x" if vals else "n/a")
        roof = statistics.median(r["roofline_fraction"] for r in rs)
        lines.append(f"| {dname} | {batch} | {' | '.join(ratios)} | {roof:.0%} |")
    return lines


def write(out: Path, meta: dict, rows: list[dict], quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"triton_{meta['device'].replace(' ', '_')}_{meta['date'][:10]}"
    md = [f"# Fused Triton depthwise-separable kernel: {meta['device']}", "",
          "Run: " + ", ".join(f"{k} {v}" for k, v in meta.items()), "",
          "Device time per call (do_bench: L2 flushed, CUDA events, median of interleaved rounds); in brackets the "
          "median eager call with host overhead (events around one call, synchronised). Geometric means over the "
          "layers:", "", *summary(rows), "", "| dtype | batch | layer | shape | " + " | ".join(VARIANTS)
          + " | fused GB/s | roofline | rel err |", "|" + " --- |" * (len(VARIANTS) + 7)]
    for r in rows:
        times = " | ".join(f"{r['median_s'][v] * 1e6:.1f} us ({r['eager_s'][v] * 1e6:.0f})" if v in r["median_s"]
                           else "n/a" for v in VARIANTS)
        md.append(f"| {r['dtype']} | {r['batch']} | {r['layer']} | {r['size']}² {r['cin']}→{r['cout']} "
                  f"s{r['stride']} | {times} | {r['fused_GBps']:.0f} | {r['roofline_fraction']:.0%} "
                  f"| {r['rel_err']:.1e} |")
    for path, text in ((out / f"{stem}.md", "\n".join(md) + "\n"),
                       (out / f"{stem}.json", json.dumps({"meta": meta, "rows": rows}, indent=1))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        if not quiet:
            print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_triton: no CUDA device is available; this benchmark times GPU kernels and needs one "
              "(see benchmarks/results/triton_PENDING.md)", file=sys.stderr)
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print("bench_triton: Triton is not installed (pip install 'sepconv[gpu]')", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
