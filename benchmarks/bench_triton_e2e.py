"""End to end on a GPU: ``mobilenet_v1`` in eval mode with the fused Triton backend against PyTorch (cuDNN).

Interleaved CUDA-event timings, medians; checks that both backends give the same logits first. Not a test.

Usage: ``python benchmarks/bench_triton_e2e.py [--dtype fp16] [--batch 256] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

import sepconv


def timed(fn) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="fp16", choices=("fp16", "bf16", "fp32"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    model = sepconv.fuse(sepconv.models.mobilenet_v1()).to("cuda", dtype)
    x = torch.randn(args.batch, 3, 224, 224, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
    runs = {}
    with torch.inference_mode():
        for name in ("torch", "auto"):
            with sepconv.set_backend(name):
                runs[name] = model(x).float()
        error = ((runs["auto"] - runs["torch"]).norm() / runs["torch"].norm()).item()

        def run(name: str):
            def call():
                with sepconv.set_backend(name):
                    model(x)
            return call

        calls = {"torch": run("torch"), "fused": run("auto")}
        for call in calls.values():
            for _ in range(3):
                call()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(args.repeats):
            for k, call in calls.items():
                times[k].append(timed(call))
    med = {k: statistics.median(v) for k, v in times.items()}
    record = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "dtype": args.dtype,
              "batch": args.batch, "median_ms": med, "speedup_fused": med["torch"] / med["fused"],
              "relative_error_vs_torch": error}
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
