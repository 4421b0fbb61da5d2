"""Calibrated conversion (``sepconv.convert(..., calibration=...)``): kept decisions, output error and time.

Two parts, each updating its section of ``benchmarks/results/calibrate.json`` and re-rendering
``benchmarks/results/calibrate.md``:

* ``accuracy``: networks trained here on the embedded digits data (the study's ``small_cnn`` at two widths, a
  VGG-style net, ``mobilenet_v1`` with standard convs at two widths on 32x32 upsampled digits), converted at 40% of
  the multiply-adds without fine-tuning, weight-only and calibrated (512 unlabelled training images; refit
  ``none``, ``pointwise``, ``alternating``). Measured on held-out images (validation + test splits, never the
  calibration inputs): top-1 agreement with the original, relative logit error, accuracy.
* ``timing``: VGG-16 (13 convs, random weights, global pooling and a linear head) at 224x224 with synthetic
  inputs: one forward pass of the original over the calibration set (the floor of any method that looks at the
  original's outputs), then the calibrated conversion (budget 0.4, refit pointwise), interleaved, medians.

Run: ``PYTHONPATH=src python benchmarks/bench_calibrate.py accuracy`` and
``PYTHONPATH=src python benchmarks/bench_calibrate.py timing --images 32 64 512 --threads 2`` (``--out FILE`` writes
the section's JSON elsewhere, e.g. on another machine; ``merge FILE`` adds it to the results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sepconv.convert import convert
from sepconv.models import mobilenet_v1, small_cnn
from sepconv.study.data import load

RESULTS = Path(__file__).parent / "results"
BUDGET, CALIBRATION_IMAGES, HELD_OUT = 0.4, 512, 64
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M")}


# ----------------------------------------------------------------------------------------------- networks
def vgg_style(channels: int = 1, classes: int = 10) -> nn.Sequential:
    """A VGG-style net for 8x8 images: 3x3 conv-BN-ReLU stacks, two max-pools, global pooling, linear."""
    layers: list[nn.Module] = []
    for item in (32, 32, "M", 64, 64, "M", 128, 128, 128):
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1, bias=False), nn.BatchNorm2d(int(item)),
                       nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, classes))


def _gray8(x: torch.Tensor) -> torch.Tensor:
    return x


def _rgb32(x: torch.Tensor) -> torch.Tensor:
    """Digits as MobileNet inputs: 32x32 (bilinear), three channels."""
    return F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)


NETS: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Tensor], torch.Tensor], int]] = {
    "small_cnn(32, 64)": (lambda: small_cnn(1, 10, widths=(32, 64), stem=16), _gray8, 15),
    "small_cnn(64, 128)": (lambda: small_cnn(1, 10), _gray8, 15),
    "VGG-style (7 convs)": (vgg_style, _gray8, 15),
    "mobilenet_v1 0.25 standard": (lambda: mobilenet_v1(0.25, 32, 10, conv="standard"), _rgb32, 20),
    "mobilenet_v1 0.5 standard": (lambda: mobilenet_v1(0.5, 32, 10, conv="standard"), _rgb32, 20),
}


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """AdamW (lr 3e-3, cosine to 0), batch 64, cross-entropy."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * math.ceil(len(y) / 64)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            batch = order[i:i + 64]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def compare(new: nn.Module, original: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    with torch.no_grad():
        ref, out = original.eval()(x), new.eval()(x)
    return {"agreement": float((out.argmax(1) == ref.argmax(1)).float().mean()),
            "output_error": float((out - ref).norm() / ref.norm()),
            "accuracy": float((out.argmax(1) == y).float().mean())}


def accuracy_part(seeds: int) -> dict:
    data = load("digits")
    held_x, held_y = torch.cat([data.x_val, data.x_test]), torch.cat([data.y_val, data.y_test])
    rows = []
    for name, (build, view, epochs) in NETS.items():
        for seed in range(seeds):
            started = time.perf_counter()
            model = train(build(), view(data.x_train), data.y_train, epochs, seed)
            trained = time.perf_counter() - started
            calib, held = view(data.x_train[:CALIBRATION_IMAGES]), view(held_x)
            base = compare(model, model, held, held_y)
            for method in ("depthwise", "spatial"):
                rows.append(_one(name, seed, method, model, calib, held, held_y, base["accuracy"], trained))
                print(json.dumps(rows[-1]), flush=True)
    return {"machine": machine(), "load_average": os.getloadavg(), "budget": BUDGET,
            "calibration_images": CALIBRATION_IMAGES, "held_out_images": len(held_y), "rows": rows}


def _one(name: str, seed: int, method: str, model: nn.Module, calib: torch.Tensor, held: torch.Tensor,
         held_y: torch.Tensor, accuracy: float, trained: float) -> dict:
    row = {"network": name, "seed": seed, "method": method, "original_accuracy": accuracy,
           "train_seconds": trained}
    started = time.perf_counter()
    new, report = convert(model, method, budget=BUDGET, example_inputs=calib[:16])
    row["weight_only"] = {**compare(new, model, held, held_y), "mac_ratio": report.mac_ratio,
                          "seconds": time.perf_counter() - started}
    for refit in ("none", "pointwise", "alternating"):
        started = time.perf_counter()
        new, report = convert(model, method, budget=BUDGET, calibration=calib, refit=refit)
        row[refit] = {**compare(new, model, held, held_y), "mac_ratio": report.mac_ratio,
                      "seconds": time.perf_counter() - started,
                      "calibration_agreement": report.calibration["agreement_after"],
                      "images": report.calibration["images"], "ranks": [r.rank for r in report.layers]}
    return row


# ------------------------------------------------------------------------------------------------- timing
def vgg16(classes: int = 1000) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):  # He init keeps activations of random inputs at a steady scale
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model.eval()


def timing_part(images: list[int], repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    model = vgg16().to(device)
    held = torch.randn(HELD_OUT, 3, 224, 224, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.no_grad():
        expected = torch.cat([model(part) for part in held.split(32)])
    runs = []
    for n in images:
        x = torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(device)
        floors, totals, loads = [], [], []
        for _ in range(repeats):  # interleaved: the floor and the conversion see the same machine state
            loads.append(os.getloadavg()[0])
            floors.append(_floor(model, x))
            started = time.perf_counter()
            new, report = convert(model, "depthwise", budget=BUDGET, calibration=x, batch_size=32)
            _sync(device)
            totals.append(time.perf_counter() - started)
        with torch.no_grad():  # fresh inputs, never seen by the calibration (not timed)
            out = torch.cat([new(part) for part in held.split(32)])
        runs.append({"images": n, "floor_seconds": floors, "convert_seconds": totals, "load_average_1min": loads,
                     "floor_median": statistics.median(floors), "convert_median": statistics.median(totals),
                     "ratio_to_floor": statistics.median(totals) / statistics.median(floors),
                     "date": time.strftime("%Y-%m-%d %H:%M"),
                     "mac_ratio": report.mac_ratio, "layers_converted": sum(r.method != "kept" for r in report.layers),
                     "output_error_before": report.calibration["output_error_before"],
                     "output_error_after": report.calibration["output_error_after"],
                     "images_used": report.calibration["images"],
                     "held_out_error": float((out - expected).norm() / expected.norm())})
        print(json.dumps(runs[-1]), flush=True)
    return {"machine": machine(), "device": device, "model": "VGG-16: 13 convs + global pooling + linear, random "
            "(He) weights, synthetic N(0, 1) inputs 3x224x224, batches of 32", "budget": BUDGET, "code": _commit(),
            "runs": runs}


def _commit() -> str | None:
    """The git commit of the code measured (``None`` outside a checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _floor(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds of one forward pass of the original over ``x`` in batches of 32 (what any calibration must run)."""
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 32):
            model(x[i:i + 32])
    _sync(str(x.device))
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------- report
def render(results: dict) -> str:
    lines = ["# Calibrated conversion (`sepconv.convert(..., calibration=...)`)", ""]
    accuracy = results.get("accuracy")
    if accuracy:
        lines += _accuracy_lines(accuracy)
    for key, timing in sorted(results.get("timing", {}).items()):
        lines += _timing_lines(key, timing)
    return "\n".join(lines) + "\n"


def _accuracy_lines(part: dict) -> list[str]:
    m = part["machine"]
    lines = ["## Kept decisions and output error at 40% of the multiply-adds, no fine-tuning", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['torch_threads']} threads, {m['date']}; "
             f"load average {', '.join(f'{v:.1f}' for v in part['load_average'])}. Calibration: the first "
             f"{part['calibration_images']} training images (unlabelled); measured on {part['held_out_images']} "
             "held-out images (validation + test splits). agree = top-1 agreement with the original; err = relative "
             "logit error; err ratio = weight-only err / calibrated (pointwise) err. Targets: agree >= 95% and "
             "err ratio >= 3.", "",
             "| network | seed | method | original acc | MACs | weight-only agree / err | calibrated, no refit "
             "agree / err | **calibrated (pointwise)** agree / err / acc | err ratio | alternating agree / err | "
             "calibration s (images used) | targets |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in part["rows"]:
        w, n, p, a = r["weight_only"], r["none"], r["pointwise"], r["alternating"]
        ratio = w["output_error"] / p["output_error"]
        ok = p["agreement"] >= 0.95 and ratio >= 3
        lines.append(f"| {r['network']} | {r['seed']} | {r['method']} | {r['original_accuracy']:.1%} | "
                     f"{p['mac_ratio']:.0%} | {w['agreement']:.1%} / {w['output_error']:.3f} | "
                     f"{n['agreement']:.1%} / {n['output_error']:.3f} | **{p['agreement']:.1%} / "
                     f"{p['output_error']:.3f}** / {p['accuracy']:.1%} | {ratio:.1f}x | {a['agreement']:.1%} / "
                     f"{a['output_error']:.3f} | {p['seconds']:.1f} ({p.get('images', part['calibration_images'])}) | "
                     f"{'met' if ok else 'MISSED'} |")
    return [*lines, ""]


def _timing_lines(key: str, part: dict) -> list[str]:
    m = part["machine"]
    where = f"{m['gpu']} (GPU)" if part["device"].startswith("cuda") else \
        f"{m['cpu']}, {m['torch_threads']} threads ({m['cores']} cores in the machine)"
    lines = [f"## Calibration time, {part['model']} ({key})", "",
             f"Machine: {where}, torch {m['torch']}, {m['date']}"
             f"{', code ' + part['code'] if part.get('code') else ''}. Budget {part['budget']}, refit pointwise. "
             "floor = "
             "one forward pass of the original over the calibration images (any calibration must run at least "
             "this); medians of interleaved repeats. used = inputs the calibration passes ran on "
             "(`calibration_images='auto'`); held-out err = relative output error on "
             f"{HELD_OUT} fresh inputs.", "",
             "| images | used | floor s (median) | calibrated convert s (median) | convert / floor | all convert runs "
             "(s) | load average | MAC ratio | calibration err before -> after | held-out err |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in part["runs"]:
        held = f"{r['held_out_error']:.3f}" if "held_out_error" in r else "-"
        lines.append(f"| {r['images']} | {r.get('images_used', r['images'])} | {r['floor_median']:.1f} | "
                     f"{r['convert_median']:.1f} | {r['ratio_to_floor']:.1f}x | "
                     f"{', '.join(f'{v:.1f}' for v in r['convert_seconds'])} | "
                     f"{', '.join(f'{v:.1f}' for v in r['load_average_1min'])} | {r['mac_ratio']:.2f} | "
                     f"{r['output_error_before']:.3f} -> {r['output_error_after']:.3f} | {held} |")
    return [*lines, ""]


def _merge_runs(old: dict | None, new: dict) -> dict:
    """A timing section with ``new``'s runs, and ``old``'s runs of other image counts if measured the same way
    (same model, budget, device and code: a run of another invocation keeps its own date)."""
    if old is None or old.get("model") != new.get("model") or old.get("code") != new.get("code"):
        return new
    runs = {r["images"]: r for r in old["runs"]} | {r["images"]: r for r in new["runs"]}
    return {**new, "runs": [runs[n] for n in sorted(runs)]}


def _save(results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibrate.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "calibrate.md").write_text(render(results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("accuracy", "timing", "merge", "render"))
    parser.add_argument("file", nargs="?", help="for merge: a JSON section written with --out")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--images", type=int, nargs="+", default=[CALIBRATION_IMAGES])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="write this part's JSON here instead of merging it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = RESULTS / "calibrate.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.part == "accuracy":
        section = {"accuracy": accuracy_part(args.seeds)}
    elif args.part == "timing":
        key = f"{args.device}, {torch.get_num_threads()} threads"
        section = {"timing": {key: timing_part(args.images, args.repeats, args.device)}}
    elif args.part == "merge":
        section = json.loads(Path(args.file).read_text())
    else:
        section = {}
    if args.out:
        Path(args.out).write_text(json.dumps(section, indent=1))
        return
    results.update({k: v for k, v in section.items() if k != "timing"})
    for key, part in section.get("timing", {}).items():
        results.setdefault("timing", {})[key] = _merge_runs(results["timing"].get(key), part)
    _save(results)
    print(render(results), file=sys.stderr)


if __name__ == "__main__":
    main()
