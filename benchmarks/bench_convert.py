"""Time ``sepconv.convert`` on a VGG-16-sized stack of convs (random weights, 224x224 input).

Run: ``PYTHONPATH=src python benchmarks/bench_convert.py``; writes benchmarks/results/convert_vgg16.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from sepconv.convert import convert

REPEATS = 3
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    torch.manual_seed(0)
    model = vgg16_features().eval()
    x = torch.randn(1, 3, 224, 224)
    runs = []
    for method, kwargs in (("depthwise", {"budget": 0.3}), ("depthwise", {"budget": 0.3, "example_inputs": x}),
                           ("spatial", {"budget": 0.3}), ("spatial", {"budget": 0.3, "example_inputs": x})):
        times, loads = [], []
        for _ in range(REPEATS):
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            _, report = convert(model, method, **kwargs)
            times.append(time.perf_counter() - start)
        runs.append({"method": method, "budget": 0.3, "example_inputs": "example_inputs" in kwargs,
                     "seconds_median": statistics.median(times), "seconds_all": times, "load_average_1min": loads,
                     "layers_converted": sum(r.method != "kept" for r in report.layers),
                     "mac_ratio": report.mac_ratio, "output_error": report.output_error})
        print(runs[-1])
    result = {
        "benchmark": "sepconv.convert on VGG-16 features (13 convs, random weights), 224x224",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "note": "load_average_1min is the machine's 1-minute load before each run; above the core count, other "
                "jobs competed for the CPU and the timings are upper bounds",
        "runs": runs,
    }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "convert_vgg16.json").write_text(json.dumps(result, indent=2))
    lines = [f"# {result['benchmark']}", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads. {result['note']}.", "",
             f"| method | budget | example inputs | seconds (median of {REPEATS}) | all runs (s) | load average "
             "| converted layers | MAC ratio | output error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        err = "-" if r["output_error"] is None else f"{r['output_error']:.3f}"
        runs_s = ", ".join(f"{t:.2f}" for t in r["seconds_all"])
        loads_s = ", ".join(f"{v:.1f}" for v in r["load_average_1min"])
        lines.append(f"| {r['method']} | {r['budget']} | {r['example_inputs']} | {r['seconds_median']:.2f} | "
                     f"{runs_s} | {loads_s} | {r['layers_converted']} | {r['mac_ratio']:.3f} | {err} |")
    (out / "convert_vgg16.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
