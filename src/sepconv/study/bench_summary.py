"""The summary of ``sepconv bench``: geometric means over the cases, with readable labels and explanations.

Every figure has a label a reader understands without the code, and every figure that can fall below 1 has a
sentence saying what a value below 1 means (a physical limit, or a regression to report).

Example:
    >>> summary = summarize([], [], None, 20.0)
    >>> summary
    {'copy_bandwidth_gbps': 20.0}
    >>> label("copy_bandwidth_gbps")
    'memory copy bandwidth of this machine, GB/s (bytes read + written)'
    >>> explain({"sepconv_vs_plain": 0.8})[0].startswith("sepconv vs the PyTorch NCHW composition is 0.80, below 1")
    True
"""

from __future__ import annotations

import math

__all__ = ["LABELS", "SHORT", "explain", "label", "summarize"]

#: summary key -> (readable label, what a value below 1 means; None where 1 is no threshold).
LABELS: dict[str, tuple[str, str | None]] = {
    "sepconv_fraction_of_mac_ratio": (
        "sepconv speedup over the standard conv, as a share of the MAC ratio (1 = the full theoretical gain)",
        "the separable layer saves less time than multiply-adds: its depthwise step is memory-bound (about 2 FLOP "
        "per byte), so it runs at memory speed while the standard conv runs at matrix-multiply speed"),
    "sepconv_fraction_vs_prepacked_standard": (
        "the same share against oneDNN's prepacked standard conv (the fastest standard conv here)",
        "as above, against a standard conv that also skips PyTorch's per-call weight reordering"),
    "channels_last_fraction_of_mac_ratio": (
        "PyTorch composition in channels_last (groups=C conv, then 1x1), share of the MAC ratio",
        "the plain PyTorch composition gains less than the multiply-adds promise, for the same memory-bound reason"),
    "plain_fraction_of_mac_ratio": (
        "PyTorch composition in NCHW (groups=C conv, then 1x1), share of the MAC ratio",
        "the plain PyTorch composition gains less than the multiply-adds promise, for the same memory-bound reason"),
    "sepconv_vs_plain": (
        "sepconv vs the PyTorch NCHW composition, time ratio (>1 = sepconv faster)",
        "sepconv is slower than the plain PyTorch composition on this machine: a regression, please report it "
        "with this output"),
    "copy_bandwidth_gbps": ("memory copy bandwidth of this machine, GB/s (bytes read + written)", None),
    "depthwise_bandwidth_fraction": (
        "depthwise step's bandwidth as a share of the copy bandwidth (1 = streams at memory speed)",
        "the depthwise step does not stream at full memory speed: each library call has a fixed cost (about "
        "20 µs here) and the small late layers hold too little data to amortise it"),
    "spatial_slower_when_fewer_macs": (
        "spatially separable cases slower than the k x k conv despite fewer multiply-adds (count)", None),
    "end_to_end_speedup": (
        "MobileNet v1 end to end, sepconv fused vs the plain PyTorch model, time ratio (>1 = sepconv faster)",
        "the fused network is slower than the plain one on this machine: a regression, please report it"),
    "sepconv_vs_onnxruntime": (
        "sepconv vs ONNX Runtime on the same layers, time ratio (>1 = sepconv faster)",
        "ONNX Runtime runs these layers faster here: it executes the whole layer in one call of its own kernels, "
        "without PyTorch's per-operator dispatch"),
}


#: summary key -> the short name used in the explanations.
SHORT: dict[str, str] = {
    "sepconv_fraction_of_mac_ratio": "sepconv's share of the MAC ratio",
    "sepconv_fraction_vs_prepacked_standard": "sepconv's share against the prepacked standard conv",
    "channels_last_fraction_of_mac_ratio": "the channels_last composition's share of the MAC ratio",
    "plain_fraction_of_mac_ratio": "the NCHW composition's share of the MAC ratio",
    "sepconv_vs_plain": "sepconv vs the PyTorch NCHW composition",
    "depthwise_bandwidth_fraction": "the depthwise step's share of the copy bandwidth",
    "end_to_end_speedup": "the end-to-end speedup",
    "sepconv_vs_onnxruntime": "sepconv vs ONNX Runtime",
}


def label(key: str) -> str:
    """The readable label of a summary key (the key itself if unknown)."""
    return LABELS.get(key, (key, None))[0]


def explain(summary: dict) -> list[str]:
    """One sentence per figure below 1 (and per spatial case slower despite fewer MACs) saying why."""
    lines = []
    for key, value in summary.items():
        reason = LABELS.get(key, (key, None))[1]
        if reason is not None and isinstance(value, float) and value < 1:
            lines.append(f"{SHORT.get(key, key)} is {value:.2f}, below 1: {reason}.")
    count = summary.get("spatial_slower_when_fewer_macs", 0)
    if count:
        lines.append(f"{count} spatially separable case(s) ran slower than the k x k conv despite fewer multiply-adds: "
                     f"the two thin convs read and write the activation twice and each call has a fixed cost, so "
                     f"fewer multiply-adds do not mean less time when the layer is memory-bound.")
    return lines


def _geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summarize(cases: list[dict], spatial: list[dict], end_to_end: dict | None, bandwidth: float | None) -> dict:
    """Geometric means over the finished cases; figures whose cases did not run are left out."""
    summary = {
        "sepconv_fraction_of_mac_ratio": _geomean([r["fraction_of_mac_ratio"] for r in cases]),
        "sepconv_fraction_vs_prepacked_standard": _geomean([r["fraction_vs_prepacked_standard"] for r in cases]),
        "channels_last_fraction_of_mac_ratio": _geomean([r["speedup_channels_last"] / r["mac_ratio"] for r in cases]),
        "plain_fraction_of_mac_ratio": _geomean([r["speedup_plain"] / r["mac_ratio"] for r in cases]),
        "sepconv_vs_plain": _geomean([r["median_ms"]["plain"] / r["median_ms"]["sepconv"] for r in cases]),
        "copy_bandwidth_gbps": bandwidth,
        "depthwise_bandwidth_fraction": None if bandwidth is None or not cases else
        _geomean([r["depthwise_gbps"] for r in cases]) / bandwidth,  # type: ignore[operator]
        "spatial_slower_when_fewer_macs": sum(1 for r in spatial if r["mac_ratio"] > 1 and r["speedup"] < 1)
        if spatial else None,
        "end_to_end_speedup": end_to_end["speedup"] if end_to_end else None,
        "sepconv_vs_onnxruntime": _geomean([r["median_ms"]["onnxruntime"] / r["median_ms"]["sepconv"]
                                            for r in cases if "onnxruntime" in r["median_ms"]]),
    }
    return {key: value for key, value in summary.items() if value is not None}
