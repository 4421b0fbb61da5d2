"""Issue 13's record: sepconv's CPU inference against ONNX Runtime and torch.compile. Not a test.

Four parts, each timed interleaved in this one process (every variant once per round, medians over rounds):

1. end to end (MobileNet v1 at batch 1 and 8, Xception at batch 1; 2 threads and 1 thread): the model as users
   run it (eager), ``sepconv.optimize``, the same with the native kernel off (oneDNN path), ONNX Runtime on the
   model exported by ``torch.onnx.export(dynamo=True)`` (through ``sepconv.interop.onnx.export_onnx``; intra-op
   spinning off, so that its idle threads do not steal the next variant's time) and ``torch.compile`` with
   inductor's ``freezing``;
2. small problems: the study's ``small_cnn`` depthwise against standard at batch 1 on 1x28x28, and a
   ``SeparableConv2d`` against the ``nn.Conv2d`` it replaces on small inputs where it has >= 4x fewer MACs;
3. per layer (MobileNet v1's depthwise separable shapes, batch 1 and 8): sepconv against the best standard conv
   (eager NCHW, channels_last or prepacked oneDNN, whichever is fastest) and the plain NCHW composition, and the
   depthwise step's bandwidth;
4. the limit: this machine's FMA rate (the faster of two GEMMs: torch.mm 2048^3 and a prepacked oneDNN 1x1 conv)
   and copy bandwidth, and every figure as a fraction of them.

Usage: ``python benchmarks/bench_cpu_inference.py [--repeats N] [--threads 2,1] [--no-compile] [--quick]
[--name NAME]``; writes ``benchmarks/results/cpu_inference.{json,md}`` (or ``NAME.{json,md}``). An AVX2-only machine
is emulated on an AVX-512 one with ``SEPCONV_NATIVE_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2`` (recorded; ONNX Runtime cannot be limited and keeps its AVX-512 kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import sepconv
from sepconv.backends import native
from sepconv.backends.onednn import prepacked_conv
from sepconv.study.bench import copy_bandwidth, machine, mobilenet_shapes

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each function, timed round-robin under inference mode."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def gemm_rate(repeats: int = 10) -> dict[str, float]:
    """Multiply-adds per second of the two GEMMs PyTorch has on CPU, with the current threads: a 2048^3 float32
    ``torch.mm`` (MKL, which does not use AVX-512 at full rate on AMD CPUs) and a 1x1 conv 1024 -> 1024 on
    64x64 pixels through oneDNN on prepacked weights (a 4096 x 1024 x 1024 GEMM). The larger is the machine's
    FMA rate the figures are compared with."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    conv = nn.Conv2d(1024, 1024, 1).eval()
    x = torch.randn(1, 1024, 64, 64).contiguous(memory_format=torch.channels_last)
    one_by_one = prepacked_conv(conv, x)
    seconds = interleaved({"mm": lambda: a @ b, "1x1": lambda: one_by_one(x)}, repeats)
    return {"torch.mm": 2048**3 / seconds["mm"], "oneDNN 1x1 conv": 4096 * 1024 * 1024 / seconds["1x1"]}


def cpu_steal_seconds() -> float | None:
    """Seconds the hypervisor ran other guests on this machine's CPUs since boot (``steal`` in ``/proc/stat``;
    ``None`` where there is no such file): its growth during a run says how much of the run was taken away."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def native_off(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with the native kernel turned off (``SEPCONV_NATIVE=0``): the oneDNN path."""
    def run() -> object:
        os.environ["SEPCONV_NATIVE"] = "0"
        try:
            return fn()
        finally:
            del os.environ["SEPCONV_NATIVE"]
    return run


def ort_session(model: nn.Module, x: torch.Tensor, threads: int, folder: str) -> Callable[[], object]:
    import onnxruntime as ort

    from sepconv.interop.onnx import export_onnx

    path = os.path.join(folder, f"model{id(model)}_{x.shape[0]}.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, path, tuple(x.shape), check=False)  # torch.onnx.export(dynamo=True), opset 18
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name, feed = session.get_inputs()[0].name, x.numpy()
    return lambda: torch.from_numpy(session.run(None, {name: feed})[0])


def compiled(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    import torch._inductor.config as inductor

    inductor.freezing = True
    fn = torch.compile(model, dynamic=False)
    with torch.inference_mode():
        fn(x)
    return lambda: fn(x)


def end_to_end(name: str, batch: int, threads: tuple[int, ...], repeats: int, compile_: bool,
               folder: str) -> list[dict]:
    torch.manual_seed(0)
    model = getattr(sepconv.models, name)().eval()
    size = 224 if name == "mobilenet_v1" else 299
    x = torch.randn(batch, 3, size, size)
    macs = sepconv.count(model, tuple(x.shape)).macs
    fast, onednn_copy = sepconv.optimize(model), sepconv.optimize(model)
    variants: dict[str, Callable[[], object]] = {
        "eager": lambda: model(x), "sepconv.optimize": lambda: fast(x),
        "optimize, oneDNN path": native_off(lambda: onednn_copy(x))}
    variants["ONNX Runtime"] = ort_session(model, x, threads[0], folder)
    if compile_:
        variants["torch.compile"] = compiled(model, x)
    with torch.inference_mode():
        reference = model(x)
        errors = {k: float((fn() - reference).abs().max() / reference.abs().max()) for k, fn in variants.items()}
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        if count != threads[0]:
            variants["ONNX Runtime"] = ort_session(model, x, count, folder)
        medians = interleaved(variants, repeats)
        rows.append({"model": name, "batch": batch, "threads": count, "macs": macs, "ms": {
            k: v * 1e3 for k, v in medians.items()}, "max_rel_error": errors})
        print(f"  {name} b{batch} {count}T: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in medians.items()),
              flush=True)
    return rows


def small_problems(repeats: int) -> dict:
    x = torch.randn(1, 1, 28, 28)
    nets = {c: sepconv.models.small_cnn(conv=c).eval() for c in ("standard", "depthwise")}
    variants = {f"{c} eager": (lambda m=m: m(x)) for c, m in nets.items()}
    for c, m in nets.items():
        fast = sepconv.optimize(m)
        variants[f"{c} optimize"] = lambda f=fast: f(x)
    nets_ms = {k: v * 1e3 for k, v in interleaved(variants, repeats * 10).items()}
    layers = [_small_layer(c, n, size, repeats) for c, n, size in [
        (8, 16, 8), (16, 32, 8), (16, 32, 16), (32, 32, 8), (32, 64, 16), (64, 64, 8), (64, 128, 14), (128, 128, 7),
        (32, 32, 28)]]
    return {"nets_ms": nets_ms, "depthwise_speedup": nets_ms["standard optimize"] / nets_ms["depthwise optimize"],
            "layers": layers}


def _small_layer(c: int, n: int, size: int, repeats: int) -> dict:
    conv = nn.Conv2d(c, n, 3, padding=1).eval()
    sep = sepconv.optimize(nn.Sequential(sepconv.SeparableConv2d(c, n, 3, padding=1)))[0]  # a layer, like conv
    x = torch.randn(1, c, size, size)
    medians = interleaved({"conv": lambda: conv(x), "separable": lambda: sep(x)}, repeats * 10)
    return {"case": f"{c}->{n} @{size} b1", "mac_ratio": (c * n * 9) / (c * 9 + c * n),
            "conv_us": medians["conv"] * 1e6, "separable_us": medians["separable"] * 1e6,
            "speedup": medians["conv"] / medians["separable"]}


def per_layer(batch: int, repeats: int) -> list[dict]:
    rows = [_layer_case(c, n, size, stride, batch, repeats) for c, n, size, stride in mobilenet_shapes()]
    for row in rows:
        print(f"  {row['case']}: {row['fraction_of_mac_ratio']:.0%} of the MAC ratio, "
              f"{row['vs_plain_nchw']:.2f}x plain, dw {row['depthwise_gbps']:.1f} GB/s", flush=True)
    return rows


def _layer_case(c: int, n: int, size: int, stride: int, batch: int, repeats: int) -> dict:
    x = torch.randn(batch, c, size, size)
    xl = x.contiguous(memory_format=torch.channels_last)
    standard = nn.Conv2d(c, n, 3, stride=stride, padding=1).eval()
    standard_cl = nn.Conv2d(c, n, 3, stride=stride, padding=1).eval().to(memory_format=torch.channels_last)
    prepacked = prepacked_conv(standard, xl)
    layer = sepconv.SeparableConv2d(c, n, 3, stride=stride, padding=1, activation="relu").eval()
    dw, pw = layer.depthwise, layer.pointwise
    fast = sepconv.optimize(nn.Sequential(layer))[0]
    with torch.inference_mode():
        fast(xl)
        plan = native.plan(fast, xl)
        spare = native.kernel.depthwise_only(plan, xl)
        spare = native.kernel.alias(spare)  # its memory, reused by every timed call
    fns = {
        "standard NCHW": lambda: standard(x), "standard channels_last": lambda: standard_cl(xl),
        "standard prepacked": lambda: prepacked(xl),
        "plain NCHW": lambda: pw(F.relu(F.conv2d(x, dw.weight, dw.bias, stride, 1, 1, c))),
        "sepconv": lambda: fast(xl), "depthwise step": lambda: native.kernel.depthwise_only(plan, xl, spare)}
    ms = {k: v * 1e3 for k, v in interleaved(fns, repeats).items()}
    best = min(ms["standard NCHW"], ms["standard channels_last"], ms["standard prepacked"])
    out = (size + 2 - 3) // stride + 1
    mac_ratio = (9 * c * n) / (9 * c + c * n)
    sep_macs = batch * out * out * (9 * c + c * n)
    dw_bytes = 4 * batch * (c * size * size + c * out * out)
    return {"case": f"{c}->{n} @{size} s{stride} b{batch}", "mac_ratio": mac_ratio, "ms": ms,
            "speedup_vs_best_standard": best / ms["sepconv"],
            "fraction_of_mac_ratio": best / ms["sepconv"] / mac_ratio,
            "vs_plain_nchw": ms["plain NCHW"] / ms["sepconv"],
            "sepconv_gmacs": sep_macs / ms["sepconv"] / 1e6,
            "depthwise_gbps": dw_bytes / ms["depthwise step"] / 1e6}


# environment variables that lower the instruction set of sepconv's kernel, PyTorch's, oneDNN's and MKL's
ISA_LIMITS = ("SEPCONV_NATIVE_ISA", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def save(stem: str, report: dict, text: str) -> None:
    """Write ``results/<stem>.json`` (the report) and ``results/<stem>.md`` (its ``text``), each atomically."""
    RESULTS.mkdir(exist_ok=True)
    for suffix, content in ((".json", json.dumps(report, indent=2) + "\n"), (".md", text)):
        tmp = RESULTS / f"{stem}{suffix}.tmp"
        tmp.write_text(content)
        tmp.replace(RESULTS / f"{stem}{suffix}")


def steadiness(report: dict) -> str:
    """The record's note on how steady the machine was: the GEMM rate measured again at the end of the run (a
    shared host's neighbours change it by tens of percent within minutes) and the CPU steal time during it."""
    end, text = report.get("gemm_at_end"), ""
    if end:
        text += " GEMM rate at the start / end of the run (GMAC/s): " + ", ".join(
            f"{report['peak'][t]['gemm_gmacs']:.1f} / {rate:.1f} ({t} thread{'' if t == '1' else 's'})"
            for t, rate in end.items()) + "."
    if report["machine"].get("steal_seconds") is not None:
        text += f" CPU steal time during the run: {report['machine']['steal_seconds']:.1f} s."
    return text


def geomean(values: list[float]) -> float:
    values = [v for v in values if v > 0]
    return float(torch.tensor(values).log().mean().exp()) if values else float("nan")


def markdown(report: dict) -> str:
    m, peak = report["machine"], report["peak"]
    lines = [
        "# CPU inference: sepconv against ONNX Runtime and torch.compile (issue 13)", "",
        f"{m['cpu']}, {m['cores']} cores, CPU capability (PyTorch): {m['avx512']}, torch {m['torch']}, onnxruntime "
        f"{m['onnxruntime']}, native kernel: {m['native']}; {m['date']}; {report['repeats']} interleaved rounds, "
        f"medians. Load average before/after: {m['load_before']} / {m['load_after']}.{steadiness(report)}", "",
        *([f"Instruction sets limited (an AVX2-only machine emulated): "
           f"{', '.join(f'{k}={v}' for k, v in m['isa_limits'].items())}; ONNX Runtime cannot be limited and "
           "still runs its AVX-512 kernels.", ""] if m.get("isa_limits") else []),
        "## The limit (this machine)", "",
        "| threads | GEMM rate (GMAC/s): the larger of | torch.mm 2048^3 | oneDNN 1x1 conv, prepacked | "
        "copy bandwidth (GB/s) |", "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {t} | {p['gemm_gmacs']:.1f} | {p.get('gemms_gmacs', {}).get('torch.mm', float('nan')):.1f} | "
              f"{p.get('gemms_gmacs', {}).get('oneDNN 1x1 conv', float('nan')):.1f} | {p['copy_gbps']:.1f} |"
              for t, p in peak.items()]
    lines += ["", "## 1. End to end (ms; ratios > 1: sepconv.optimize is faster)", "",
              "| model | batch | threads | eager | optimize | oneDNN path | ONNX Runtime | torch.compile | "
              "vs ORT | vs compile | GMAC/s | of GEMM peak |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["end_to_end"]:
        ms = r["ms"]
        fast = ms["sepconv.optimize"]
        compile_ms = ms.get("torch.compile")
        gmacs = r["macs"] / fast / 1e6
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {ms['eager']:.2f} | {fast:.2f} | "
            f"{ms['optimize, oneDNN path']:.2f} | {ms['ONNX Runtime']:.2f} | "
            f"{'' if compile_ms is None else f'{compile_ms:.2f}'} | {ms['ONNX Runtime'] / fast:.2f}x | "
            f"{'' if compile_ms is None else f'{compile_ms / fast:.2f}x'} | {gmacs:.1f} | "
            f"{gmacs / peak[str(r['threads'])]['gemm_gmacs']:.0%} |")
    lines += ["", "The oneDNN-path column is the same optimized model with `SEPCONV_NATIVE=0`. Where torch.compile ran "
              "in the same process, inductor's set-up slows that path at batch 1 with 2 threads (about 14 ms in a "
              "run of this script without torch.compile); the other columns are not affected."]
    small = report["small"]
    lines += ["", "## 2. Small problems (batch 1)", "",
              "small_cnn on 1x28x28 (µs): " + ", ".join(f"{k} {v * 1e3:.0f}" for k, v in small["nets_ms"].items())
              + f"; depthwise over standard (optimize): **{small['depthwise_speedup']:.2f}x** faster.", "",
              "| layer | MAC ratio | nn.Conv2d µs | SeparableConv2d (optimize) µs | speedup |",
              "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['case']} | {r['mac_ratio']:.1f}x | {r['conv_us']:.1f} | {r['separable_us']:.1f} | "
              f"{r['speedup']:.2f}x |" for r in small["layers"]]
    lines += ["", "## 3. Per layer, MobileNet v1 shapes (ms)", "",
              "The ceilings are what a separable layer running all its multiply-adds at the GEMM rate of the limit "
              "table would reach against the same measured references (no implementation can do better on this "
              "machine): where the plain composition's pointwise step already runs near that rate, 2x over it is "
              "out of reach.", "",
              "| case | MAC ratio | best standard | plain NCHW | sepconv | of MAC ratio | ceiling | vs plain | "
              "ceiling | GMAC/s | dw step GB/s | dw of copy bw |", "| --- |" + " ---: |" * 11]
    rate = peak[str(report["per_layer_threads"])]["gemm_gmacs"]
    copy = peak[str(report["per_layer_threads"])]["copy_gbps"]
    ceilings = [ceiling(r, rate) for r in report["per_layer"]]
    for r, (mac_ceiling, plain_ceiling) in zip(report["per_layer"], ceilings):
        ms = r["ms"]
        best = min(ms["standard NCHW"], ms["standard channels_last"], ms["standard prepacked"])
        lines.append(f"| {r['case']} | {r['mac_ratio']:.1f}x | {best:.3f} | {ms['plain NCHW']:.3f} | "
                     f"{ms['sepconv']:.3f} | {r['fraction_of_mac_ratio']:.0%} | {mac_ceiling:.0%} | "
                     f"{r['vs_plain_nchw']:.2f}x | {plain_ceiling:.2f}x | {r['sepconv_gmacs']:.1f} | "
                     f"{r['depthwise_gbps']:.1f} | {r['depthwise_gbps'] / copy:.0%} |")
    s = report["summary"]
    lines += ["", "## Summary (geometric means over the per-layer cases)", "",
              f"- of the MAC ratio: {s['fraction_of_mac_ratio']:.0%} (goal 85%; ceiling on this machine "
              f"{geomean([c[0] for c in ceilings]):.0%})",
              f"- against the plain NCHW composition: {s['vs_plain_nchw']:.2f}x (goal 2x; ceiling "
              f"{geomean([c[1] for c in ceilings]):.2f}x)",
              f"- depthwise step: {s['depthwise_fraction_of_copy']:.0%} of the copy bandwidth (goal 60%)", ""]
    return "\n".join(lines)


def ceiling(row: dict, gemm_gmacs: float) -> tuple[float, float]:
    """The best "fraction of the MAC ratio" and "vs plain" a per-layer ``row`` could show: its separable layer
    at ``gemm_gmacs`` for all its multiply-adds (depthwise ones included, which no kernel reaches), against the
    references measured in the same row."""
    ms = row["ms"]
    fastest_ms = row["sepconv_gmacs"] * ms["sepconv"] / gemm_gmacs  # MACs / rate, in ms
    best = min(ms["standard NCHW"], ms["standard channels_last"], ms["standard prepacked"])
    return best / fastest_ms / row["mac_ratio"], ms["plain NCHW"] / fastest_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="MobileNet batch 1 only, no Xception")
    parser.add_argument("--render", metavar="JSON", help="only rewrite the markdown of a recorded JSON")
    parser.add_argument("--name", help="results/<name>.json and .md (default: cpu_inference, or cpu_inference_quick)")
    args = parser.parse_args()
    if args.name is not None and not re.fullmatch(r"[\w.-]+", args.name):  # checked before a run of minutes
        parser.error(f"--name must be a file name stem (letters, digits, '.', '-', '_'), got {args.name!r}")
    if args.render:
        path = Path(args.render)
        path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        return
    threads = tuple(int(t) for t in args.threads.split(","))
    load_before, steal_before = os.getloadavg(), cpu_steal_seconds()
    native_state = native.load_error() or f"built ({['baseline', 'AVX2', 'AVX-512'][native.isa()]} variant)"
    report: dict = {"repeats": args.repeats, "peak": {}, "end_to_end": [], "per_layer_threads": threads[0]}
    for count in threads:
        torch.set_num_threads(count)
        rates = gemm_rate()
        report["peak"][str(count)] = {"gemm_gmacs": max(rates.values()) / 1e9, "copy_gbps": copy_bandwidth(),
                                      "gemms_gmacs": {k: v / 1e9 for k, v in rates.items()}}
    print("peak:", report["peak"], flush=True)
    cases = [("mobilenet_v1", 1)] if args.quick else [("mobilenet_v1", 1), ("mobilenet_v1", 8), ("xception", 1)]
    with tempfile.TemporaryDirectory() as folder:
        for name, batch in cases:
            report["end_to_end"] += end_to_end(name, batch, threads, args.repeats, not args.no_compile, folder)
    torch.set_num_threads(threads[0])
    report["small"] = small_problems(args.repeats)
    print("small:", report["small"]["nets_ms"], flush=True)
    report["per_layer"] = [row for batch in (1, 8) for row in per_layer(batch, args.repeats)]
    copy = report["peak"][str(threads[0])]["copy_gbps"]
    report["summary"] = {
        "fraction_of_mac_ratio": geomean([r["fraction_of_mac_ratio"] for r in report["per_layer"]]),
        "vs_plain_nchw": geomean([r["vs_plain_nchw"] for r in report["per_layer"]]),
        "depthwise_fraction_of_copy": geomean([r["depthwise_gbps"] / copy for r in report["per_layer"]])}
    report["gemm_at_end"] = {}
    for count in threads:
        torch.set_num_threads(count)
        report["gemm_at_end"][str(count)] = max(gemm_rate().values()) / 1e9
    steal_after = cpu_steal_seconds()
    import onnxruntime

    report["machine"] = {**machine(), "avx512": torch.backends.cpu.get_cpu_capability(),
                         "onnxruntime": onnxruntime.__version__, "native": native_state,
                         "load_before": [round(v, 2) for v in load_before],
                         "load_after": [round(v, 2) for v in os.getloadavg()],
                         "steal_seconds": None if steal_before is None or steal_after is None
                         else round(steal_after - steal_before, 1),
                         "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ}}
    save(args.name or ("cpu_inference_quick" if args.quick else "cpu_inference"), report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    sys.exit(main())
