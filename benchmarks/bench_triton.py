"""Benchmark the fused Triton depthwise-separable kernel against cuDNN and PyTorch on the MobileNet v1 layers.

For every MobileNet v1 (224x224) depthwise-separable layer, batch size and dtype it times, interleaved and with
CUDA events, the median of:

- ``cudnn_standard``: the standard k x k conv the separable layer replaces (cuDNN, channels_last) + bias + ReLU;
- ``torch_dw_pw``: PyTorch's two-kernel composition, depthwise conv (+ folded BN bias) + ReLU, 1x1 conv + bias
  + ReLU, channels_last;
- ``torch_compile``: ``torch.compile`` of that composition;
- ``fused``: :func:`sepconv.backends.triton.fused_separable_conv2d` with the same epilogues.

Inputs rotate through enough copies to exceed twice the L2 cache, so every call reads from HBM. For the fused
kernel it reports the achieved HBM bandwidth (bytes of input + output + weights over the time) and the fraction
of the roofline floor (those bytes over the copy bandwidth measured in the same run). It checks the fused output
against the PyTorch composition before timing. Results go to ``benchmarks/results/`` as Markdown and JSON with
the device and versions.

Usage (a CUDA device and Triton are required)::

    python benchmarks/bench_triton.py                       # everything: fp16+bf16, batch 1/32/256
    python benchmarks/bench_triton.py --dtype fp16 --batch 32 --no-compile --repeats 20   # quick look
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
    p.add_argument("--repeats", type=int, default=50, help="timed calls per variant (interleaved)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (compiling every shape is slow)")
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


def layer_case(size: int, cin: int, cout: int, stride: int, k: int, batch: int, dtype: torch.dtype) -> dict:
    dev = "cuda"
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
    compiled = None if args.no_compile else torch.compile(torch_dw_pw, dynamic=False)
    if compiled is not None:
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
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

                def fused(c=c, stride=stride, rot=rot, wdw=wdw, shift=shift, wpw=wpw, pw_b=pw_b, pad=pad):
                    return K.launch(rot.next(), wdw, shift, wpw, pw_b, (k, k), stride, pad, "relu", "relu",
                                    args.precision)

                fns = {
                    "cudnn_standard": lambda c=c, stride=stride, rot=rot, pad=pad: F.relu(
                        F.conv2d(rot.next(), c["std"], c["pw_b"], stride, pad)),
                    "torch_dw_pw": lambda c=c, stride=stride, rot=rot, pad=pad: torch_dw_pw(
                        rot.next(), c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad),
                    "fused": fused,
                }
                if compiled is not None:
                    fns["torch_compile"] = lambda c=c, stride=stride, rot=rot, pad=pad: compiled(
                        rot.next(), c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad)
                ref = torch_dw_pw(c["x"], c["dw"], c["dw_b"], c["pw"], c["pw_b"], stride, pad).float()
                reason = K.unsupported_reason(c["x"], c["dw"], c["pw"], c["dw_b"], c["pw_b"], stride, pad)
                if reason is not None:
                    print(f"bench_triton: layer {li} not supported by the fused kernel: {reason}", file=sys.stderr)
                    return 1
                got = K.fused_separable_conv2d(c["x"], c["dw"], c["pw"], c["dw_b"], c["pw_b"], stride, pad,
                                               depthwise_activation="relu", activation="relu",
                                               precision=args.precision).float()
                err = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
                names = list(fns)
                times = dict(zip(names, time_calls([fns[n] for n in names], args.warmup, args.repeats)))
                med = {n: statistics.median(t) for n, t in times.items()}
                ho = -(-size // stride)
                nbytes = (c["x"].numel() + batch * cout * ho * ho + c["dw"].numel() + c["pw"].numel()
                          + cin + cout) * c["x"].element_size()
                row = {
                    "dtype": dname, "batch": batch, "layer": li, "size": size, "cin": cin, "cout": cout,
                    "stride": stride, "rel_err": err, "median_s": med, "bytes": nbytes,
                    "fused_GBps": nbytes / med["fused"] / 1e9, "roofline_fraction": nbytes / bw / med["fused"],
                }
                rows.append(row)
                line = "  ".join(f"{n} {med[n] * 1e6:9.1f}us" for n in names)
                print(f"{dname} b={batch:<3} L{li:<2} {size}x{size} {cin}->{cout} s{stride}  {line}  "
                      f"fused {row['fused_GBps']:.0f} GB/s ({row['roofline_fraction']:.0%} roofline) "
                      f"err {err:.1e}", flush=True)
    write(args.out, meta, rows)
    return 0


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(rows: list[dict]) -> list[str]:
    lines = ["| dtype | batch | fused vs torch_dw_pw | fused vs torch_compile | fused vs cudnn_standard "
             "| median roofline fraction |", "| --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dtype"], r["batch"]), []).append(r)
    for (dname, batch), rs in groups.items():
        ratios = []
        for other in ("torch_dw_pw", "torch_compile", "cudnn_standard"):
            vals = [r["median_s"][other] / r["median_s"]["fused"] for r in rs if other in r["median_s"]]
            ratios.append(f"{geomean(vals):.2f}x" if vals else "n/a")
        roof = statistics.median(r["roofline_fraction"] for r in rs)
        lines.append(f"| {dname} | {batch} | {' | '.join(ratios)} | {roof:.0%} |")
    return lines


def write(out: Path, meta: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"triton_{meta['device'].replace(' ', '_')}_{meta['date'][:10]}"
    md = [f"# Fused Triton depthwise-separable kernel: {meta['device']}", "",
          "Run: " + ", ".join(f"{k} {v}" for k, v in meta.items()), "", "Geometric means over the layers:", "",
          *summary(rows), "", "| dtype | batch | layer | shape | " + " | ".join(VARIANTS)
          + " | fused GB/s | roofline | rel err |", "|" + " --- |" * (len(VARIANTS) + 7)]
    for r in rows:
        times = " | ".join(f"{r['median_s'][v] * 1e6:.1f} us" if v in r["median_s"] else "n/a" for v in VARIANTS)
        md.append(f"| {r['dtype']} | {r['batch']} | {r['layer']} | {r['size']}² {r['cin']}→{r['cout']} "
                  f"s{r['stride']} | {times} | {r['fused_GBps']:.0f} | {r['roofline_fraction']:.0%} "
                  f"| {r['rel_err']:.1e} |")
    for path, text in ((out / f"{stem}.md", "\n".join(md) + "\n"),
                       (out / f"{stem}.json", json.dumps({"meta": meta, "rows": rows}, indent=1))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
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
