"""Latency benchmarks: realized vs theoretical speedups of separable layers on CPU, timed interleaved.

Every case times its variants round-robin in one loop (``repeats`` rounds), so machine noise hits all of
them alike; medians are reported. Variants of a depthwise separable case: ``standard`` (the k x k conv, the
faster of NCHW and channels_last in eager PyTorch; also timed through oneDNN with prepacked weights, the
fastest a standard conv runs on this CPU, as a second, harder baseline), ``plain`` (PyTorch's NCHW
``groups=C`` conv then 1x1 conv),
``channels_last`` (the same composition in channels_last), ``onnxruntime`` (the exported layer) and
``sepconv`` (:class:`sepconv.SeparableConv2d` after :func:`sepconv.fuse`, fed a channels_last input as it is
inside a network, running its oneDNN inference path). Spatially separable cases compare the
k x k conv with :class:`sepconv.SpatiallySeparableConv2d`.

Example:
    >>> report = run_benchmarks(quick=True, repeats=3, onnx=False)
    >>> "sepconv_fraction_of_mac_ratio" in report["summary"] and "depthwise_bandwidth_fraction" in report["summary"]
    True
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..backends import env, onednn
from ..cost import separable_cost, spatial_cost, standard_cost
from ..errors import ArgumentError
from ..fusion import fuse
from ..layers import SeparableConv2d, SpatiallySeparableConv2d

__all__ = ["machine", "mobilenet_shapes", "run_benchmarks"]

# (in, out, size, stride) of MobileNet v1's 13 depthwise separable layers at 224x224
_MOBILENET = [(32, 64, 112, 1), (64, 128, 112, 2), (128, 128, 56, 1), (128, 256, 56, 2), (256, 256, 28, 1),
              (256, 512, 28, 2), (512, 512, 14, 1), (512, 1024, 14, 2), (1024, 1024, 7, 1)]
_SPATIAL = [(64, 64, 56, 3), (64, 64, 56, 5), (64, 64, 56, 7), (128, 128, 28, 7)]


def mobilenet_shapes() -> list[tuple[int, int, int, int]]:
    """The distinct ``(C, N, H, stride)`` depthwise separable layers of MobileNet v1 at 224x224."""
    return list(_MOBILENET)


def machine() -> dict:
    """CPU model, core count, torch version and date, for recorded results."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed round-robin."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def copy_bandwidth(repeats: int = 20, mbytes: int = 64) -> float:
    """Measured copy bandwidth in GB/s (bytes read + written per second) on a ``mbytes`` MB tensor."""
    src = torch.empty(mbytes * 2**18)
    dst = torch.empty_like(src)
    seconds = _interleaved({"copy": lambda: dst.copy_(src)}, repeats)["copy"]
    return 2 * src.numel() * 4 / seconds / 1e9


def _ort_runner(layer: nn.Module, x: torch.Tensor, tmp: str) -> Callable[[], object]:
    import onnxruntime as ort

    from ..interop.onnx import export_onnx

    path = os.path.join(tmp, f"layer{id(layer)}.onnx")
    export_onnx(layer, path, tuple(x.shape), check=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def _separable_case(c: int, n: int, size: int, stride: int, batch: int, repeats: int, onnx: bool,
                    tmp: str) -> dict:
    x = torch.randn(batch, c, size, size)
    xl = x.contiguous(memory_format=torch.channels_last)
    std = nn.Conv2d(c, n, 3, stride, 1, bias=False).eval()
    std_l = nn.Conv2d(c, n, 3, stride, 1, bias=False).eval().to(memory_format=torch.channels_last)
    layer = SeparableConv2d(c, n, 3, stride, 1, bias=False).eval()
    dw, pw = layer.depthwise.weight.detach(), layer.pointwise.weight.detach()
    dwl, pwl = (w.contiguous(memory_format=torch.channels_last) for w in (dw, pw))
    fast = fuse(layer)
    std_packed = onednn.prepacked_conv(std_l, xl) if env.onednn_available() else std_l
    fns = {
        "standard_nchw": lambda: std(x),
        "standard_cl": lambda: std_l(xl),
        "standard_prepacked": lambda: std_packed(xl),
        "plain": lambda: F.conv2d(F.conv2d(x, dw, None, stride, 1, 1, c), pw),
        "channels_last": lambda: F.conv2d(F.conv2d(xl, dwl, None, stride, 1, 1, c), pwl),
        "sepconv": lambda: fast(xl),  # in a network the activations stay channels_last from layer to layer
        "depthwise_step": _depthwise_step(fast, xl, dwl, stride, c),
    }
    if onnx:
        fns["onnxruntime"] = _ort_runner(layer, x, tmp)
    t = _interleaved(fns, repeats)
    t["standard"] = min(t.pop("standard_nchw"), t.pop("standard_cl"))
    mac_ratio = standard_cost(c, n, 3).macs / separable_cost(c, n, 3).macs
    out = -(-size // stride)
    dw_bytes = 4 * (batch * c * size * size + batch * c * out * out + c * 9)
    row = {"kind": "depthwise_separable", "in": c, "out": n, "size": size, "stride": stride, "kernel": 3,
           "batch": batch, "mac_ratio": mac_ratio, "median_ms": {k: v * 1e3 for k, v in t.items()},
           "depthwise_gbps": dw_bytes / t["depthwise_step"] / 1e9}
    for name in ("plain", "channels_last", "sepconv", "onnxruntime"):
        if name in t:
            row[f"speedup_{name}"] = t["standard"] / t[name]
    row["fraction_of_mac_ratio"] = row["speedup_sepconv"] / mac_ratio
    row["fraction_vs_prepacked_standard"] = t["standard_prepacked"] / t["sepconv"] / mac_ratio
    return row


def _depthwise_step(layer: SeparableConv2d, xl: torch.Tensor, weight: torch.Tensor, stride: int,
                    channels: int) -> Callable[[], object]:
    """sepconv's depthwise step alone: the prepacked oneDNN conv when available, else channels_last conv2d."""
    with torch.inference_mode():
        if onednn.unsupported_reason(layer, xl) is None:
            return lambda: onednn.separable_forward(layer, xl, depthwise_only=True)
    return lambda: F.conv2d(xl, weight, None, stride, 1, 1, channels)


def _spatial_case(c: int, n: int, size: int, k: int, batch: int, repeats: int) -> dict:
    x = torch.randn(batch, c, size, size)
    std = fuse(nn.Conv2d(c, n, k, padding=k // 2, bias=False))
    std_nchw = nn.Conv2d(c, n, k, padding=k // 2, bias=False).eval()
    sep = fuse(SpatiallySeparableConv2d(c, n, k, padding=k // 2, bias=False))
    sep_nchw = SpatiallySeparableConv2d(c, n, k, padding=k // 2, bias=False).eval()
    xl = x.contiguous(memory_format=torch.channels_last)
    std_packed = onednn.prepacked_conv(std, xl) if env.onednn_available() else std
    t = _interleaved({"standard_nchw": lambda: std_nchw(x), "standard_cl": lambda: std(xl),
                      "standard_prepacked": lambda: std_packed(xl),
                      "spatial_nchw": lambda: sep_nchw(x), "spatial_cl": lambda: sep(xl)}, repeats)
    best_std = min(t["standard_nchw"], t["standard_cl"], t["standard_prepacked"])  # the harder baseline here
    best_sep = min(t["spatial_nchw"], t["spatial_cl"])
    mac_ratio = standard_cost(c, n, k).macs / spatial_cost(c, n, k).macs
    return {"kind": "spatially_separable", "in": c, "out": n, "size": size, "kernel": k, "batch": batch,
            "mac_ratio": mac_ratio, "median_ms": {key: v * 1e3 for key, v in t.items()},
            "speedup": best_std / best_sep}


def _end_to_end(repeats: int, resolution: int, width: float) -> dict:
    from ..models import mobilenet_v1

    model = mobilenet_v1(width, resolution).eval()
    # the plain PyTorch model: the same layers without the fast path (a torch.nn composition in NCHW)
    plain = nn.Sequential(*[_plain(m) for m in model])
    fast = fuse(model)
    x = torch.randn(1, 3, resolution, resolution)
    t = _interleaved({"plain_nchw": lambda: plain(x), "sepconv": lambda: fast(x)}, repeats)
    return {"model": f"mobilenet_v1 {width}-{resolution}", "batch": 1, "median_ms": {k: v * 1e3 for k, v in t.items()},
            "speedup": t["plain_nchw"] / t["sepconv"]}


class _PlainSeparable(nn.Module):
    def __init__(self, layer: SeparableConv2d) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))


def _plain(module: nn.Module) -> nn.Module:
    if isinstance(module, SeparableConv2d):
        return _PlainSeparable(module)
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*[_plain(m) for m in module])
    return module


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def run_benchmarks(quick: bool = False, repeats: int = 30, batches: tuple[int, ...] = (1, 8),
                   onnx: bool = True) -> dict:
    """Run the suite; returns ``{"machine", "cases", "spatial", "end_to_end", "summary"}``.

    ``quick`` runs two small shapes, batch 1, and a small end-to-end model (for tests and smoke runs).
    """
    repeats = int(_checks.number(repeats, "repeats", low=1, integer=True))
    if not batches:
        raise ArgumentError(f"batches must be positive ints, got {batches!r}")
    batches = tuple(int(_checks.number(b, "batches", low=1, integer=True)) for b in batches)
    load_at_start = os.getloadavg()
    shapes = [(16, 32, 16, 1), (32, 32, 16, 2)] if quick else _MOBILENET
    spatial = [(16, 16, 16, 3)] if quick else _SPATIAL
    batches = (1,) if quick else batches
    with tempfile.TemporaryDirectory() as tmp:
        cases = [_separable_case(c, n, s, st, b, repeats, onnx, tmp) for b in batches for c, n, s, st in shapes]
    spatial_rows = [_spatial_case(c, n, s, k, b, repeats) for b in batches for c, n, s, k in spatial]
    e2e = _end_to_end(repeats, 64 if quick else 224, 0.25 if quick else 1.0)
    bandwidth = copy_bandwidth(repeats, 8 if quick else 64)
    summary = {
        "sepconv_fraction_of_mac_ratio": _geomean([r["fraction_of_mac_ratio"] for r in cases]),
        "sepconv_fraction_vs_prepacked_standard": _geomean([r["fraction_vs_prepacked_standard"] for r in cases]),
        "channels_last_fraction_of_mac_ratio": _geomean([r["speedup_channels_last"] / r["mac_ratio"] for r in cases]),
        "plain_fraction_of_mac_ratio": _geomean([r["speedup_plain"] / r["mac_ratio"] for r in cases]),
        "sepconv_vs_plain": _geomean([r["median_ms"]["plain"] / r["median_ms"]["sepconv"] for r in cases]),
        "copy_bandwidth_gbps": bandwidth,
        "depthwise_bandwidth_fraction": _geomean([r["depthwise_gbps"] for r in cases]) / bandwidth,
        "spatial_slower_when_fewer_macs": sum(1 for r in spatial_rows if r["mac_ratio"] > 1 and r["speedup"] < 1),
        "end_to_end_speedup": e2e["speedup"],
    }
    if onnx:
        summary["sepconv_vs_onnxruntime"] = _geomean(
            [r["median_ms"]["onnxruntime"] / r["median_ms"]["sepconv"] for r in cases])
    # 1/5/15-minute load averages when the run started: above the core count, other jobs competed for the CPU
    return {"machine": {**machine(), "load_average": load_at_start},
            "repeats": repeats, "cases": cases, "spatial": spatial_rows, "end_to_end": e2e, "summary": summary}
