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
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..backends import env, onednn
from ..cost import separable_cost, spatial_cost, standard_cost
from ..errors import ArgumentError
from ..fusion import fuse
from ..layers import SeparableConv2d, SpatiallySeparableConv2d
from .bench_summary import summarize

__all__ = ["Case", "build_report", "check_arguments", "expected_seconds", "iter_benchmarks", "machine",
           "mobilenet_shapes", "plan_cases", "run_benchmarks"]

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


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``kind`` (``depthwise_separable``, ``spatially_separable``, ``end_to_end`` or
    ``bandwidth``) and its shape arguments."""

    kind: str
    args: tuple

    @property
    def label(self) -> str:
        """``'64->128 @112 s2 b1'``, ``'64->64 @56 k5 b8'``, ``'mobilenet_v1 1.0-224'``, ``'copy bandwidth'``."""
        if self.kind == "depthwise_separable":
            c, n, size, stride, batch = self.args
            return f"depthwise separable {c}->{n} @{size} s{stride} b{batch}"
        if self.kind == "spatially_separable":
            c, n, size, k, batch = self.args
            return f"spatially separable {c}->{n} @{size} k{k} b{batch}"
        if self.kind == "end_to_end":
            return f"end to end mobilenet_v1 {self.args[1]}-{self.args[0]} b1"
        return "copy bandwidth"

    def work(self) -> float:
        """A cost model of one round, in seconds at 20 GMAC/s and 10 GB/s: the standard variants' multiply-adds,
        the separable ones', and the activation traffic of the memory-bound steps."""
        if self.kind == "depthwise_separable":
            c, n, size, stride, batch = self.args
            out = -(-size // stride)
            macs = batch * out * out * (3 * c * n * 9 + 5 * (c * 9 + c * n))
            return macs / 20e9 + 5 * 4 * batch * c * size * size * 3 / 10e9
        if self.kind == "spatially_separable":
            c, n, size, k, batch = self.args
            return batch * size * size * (3 * c * n * k * k + 2 * (c * n * k + n * n * k)) / 20e9
        if self.kind == "end_to_end":
            resolution, width = self.args
            return 2 * 569e6 * width ** 2 * (resolution / 224) ** 2 / 20e9 + 0.002
        return 2 * self.args[0] * 2**20 * 2 / 10e9

    def run(self, repeats: int, onnx: bool, tmp: str) -> dict:
        """Time the case (``repeats`` interleaved rounds); returns its result row."""
        if self.kind == "depthwise_separable":
            c, n, size, stride, batch = self.args
            return _separable_case(c, n, size, stride, batch, repeats, onnx, tmp)
        if self.kind == "spatially_separable":
            c, n, size, k, batch = self.args
            return _spatial_case(c, n, size, k, batch, repeats)
        if self.kind == "end_to_end":
            return _end_to_end(repeats, *self.args)
        return {"copy_bandwidth_gbps": copy_bandwidth(repeats, self.args[0])}


def plan_cases(quick: bool = False, batches: tuple[int, ...] = (1, 8)) -> list[Case]:
    """The cases of the suite, in the order they run (``quick``: two small shapes, batch 1, a small model)."""
    shapes = [(16, 32, 16, 1), (32, 32, 16, 2)] if quick else _MOBILENET
    spatial = [(16, 16, 16, 3)] if quick else _SPATIAL
    batches = (1,) if quick else batches
    return ([Case("depthwise_separable", (c, n, s, st, b)) for b in batches for c, n, s, st in shapes]
            + [Case("spatially_separable", (c, n, s, k, b)) for b in batches for c, n, s, k in spatial]
            + [Case("end_to_end", (64, 0.25) if quick else (224, 1.0)), Case("bandwidth", (64,))])  # 2 x 64 MB > L3


def expected_seconds(cases: list[Case], repeats: int, onnx: bool) -> float:
    """Expected duration of ``cases``: their cost model (:meth:`Case.work`) scaled by a measured probe.

    The probe times the first case once (a second at most), so the estimate follows this machine and its load.
    """
    probe = cases[0]
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        probe.run(1, False, tmp)
        seconds = time.perf_counter() - began
    scale = seconds / (2 * probe.work() + 1e-3)  # one round + warm-up in the probe; a fixed cost per case
    return sum(scale * (case.work() * (repeats + 1) * (1.25 if onnx else 1.0) + 1e-3) for case in cases)


def check_arguments(repeats: object, batches: object) -> tuple[int, tuple[int, ...]]:
    """Checked ``(repeats, batches)``; refuses batches whose largest case would not fit in memory."""
    repeats = int(_checks.number(repeats, "repeats", low=1, integer=True))
    if not isinstance(batches, tuple | list) or not batches:
        raise ArgumentError(f"batches must be positive ints, got {batches!r}")
    batches = tuple(int(_checks.number(b, "batches", low=1, integer=True)) for b in batches)
    needed = max(batches) * max(c * s * s for c, _, s, _ in _MOBILENET) * 4 * 12  # inputs, outputs, copies
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        memory = None
    if memory and needed > memory // 2:
        raise ArgumentError(f"batches: batch {max(batches)} needs about {needed / 2**30:.0f} GiB for MobileNet's "
                            f"largest layer, more than half of this machine's {memory / 2**30:.0f} GiB")
    return repeats, batches


def iter_benchmarks(cases: list[Case], repeats: int, onnx: bool) -> Iterator[tuple[Case, dict, float]]:
    """Run ``cases`` one after the other; yields ``(case, result row, seconds)`` as each finishes."""
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            began = time.perf_counter()
            row = case.run(repeats, onnx, tmp)
            yield case, row, time.perf_counter() - began


def build_report(finished: list[tuple[Case, dict]], repeats: int, load: tuple[float, ...], *,
                 interrupted: bool = False) -> dict:
    """The report of the finished cases: ``{"machine", "repeats", "cases", "spatial", "end_to_end", "summary"}``
    (``"interrupted": True`` when the suite was stopped before its end)."""
    rows = {kind: [row for case, row in finished if case.kind == kind]
            for kind in ("depthwise_separable", "spatially_separable", "end_to_end", "bandwidth")}
    report = {"machine": {**machine(), "load_average": load}, "repeats": repeats,
              "cases": rows["depthwise_separable"], "spatial": rows["spatially_separable"],
              "end_to_end": rows["end_to_end"][0] if rows["end_to_end"] else None,
              "summary": summarize(rows["depthwise_separable"], rows["spatially_separable"],
                                   rows["end_to_end"][0] if rows["end_to_end"] else None,
                                   rows["bandwidth"][0]["copy_bandwidth_gbps"] if rows["bandwidth"] else None)}
    if interrupted:
        report["interrupted"] = True
    return report


def run_benchmarks(quick: bool = False, repeats: int = 30, batches: tuple[int, ...] = (1, 8),
                   onnx: bool = True) -> dict:
    """Run the suite; returns ``{"machine", "cases", "spatial", "end_to_end", "summary"}``.

    ``quick`` runs two small shapes, batch 1, and a small end-to-end model (for tests and smoke runs). The
    machine's load average when the run started is recorded: above the core count, other jobs competed.
    """
    repeats, batches = check_arguments(repeats, batches)
    load = os.getloadavg()
    finished = [(case, row) for case, row, _ in iter_benchmarks(plan_cases(quick, batches), repeats, onnx)]
    return build_report(finished, repeats, load)
