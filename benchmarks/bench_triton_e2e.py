"""End to end on a GPU: ``mobilenet_v1`` (``sepconv.optimize``) with the fused Triton backend against PyTorch (cuDNN).

For each ``dtype:batch`` case it checks that both backends give the same logits (BatchNorm statistics set from a
batch first, so that half-precision activations do not vanish in a random network), then times, interleaved, with
CUDA events and medians: eager calls (host overhead included, as a user's loop runs them) and CUDA graph replays
(device time only, as ``torch.cuda.graphs`` or ``torch.compile(mode="reduce-overhead")`` would run them). One JSON
line per case. Not a test.

Usage: ``python benchmarks/bench_triton_e2e.py [--cases fp16:256 fp16:32 bf16:256] [--repeats 30] [--configs F]``
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import sepconv

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def timed(fn) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def calibrated_model(x: torch.Tensor) -> torch.nn.Module:
    """``mobilenet_v1`` with every BatchNorm's statistics set from ``x`` (fp32), through :func:`sepconv.optimize`
    (BatchNorm folded, frozen, each layer's following ReLU moved into the kernel's epilogue). The H200 record of
    2026-12-04 was taken with :func:`sepconv.fuse`, which leaves that ReLU a separate kernel."""
    model = sepconv.models.mobilenet_v1().cuda()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    return sepconv.optimize(model.eval())


def graph_of(model: torch.nn.Module, x: torch.Tensor, backend: str):
    """A CUDA graph of ``model(x)`` under ``backend`` (warmed up on a side stream first); returns its replay."""
    with sepconv.set_backend(backend):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
    return graph.replay


def run_case(dname: str, batch: int, repeats: int) -> dict:
    dtype = DTYPES[dname]
    torch.manual_seed(0)
    x32 = torch.randn(batch, 3, 224, 224, device="cuda")
    model = calibrated_model(torch.randn(16, 3, 224, 224, device="cuda"))
    model = model.to(dtype)
    x = x32.to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        outs = {}
        for name in ("torch", "auto"):
            with sepconv.set_backend(name):
                outs[name] = model(x).double()
        error = ((outs["auto"] - outs["torch"]).norm() / outs["torch"].norm()).item()

        def eager(name: str):
            def call():
                with sepconv.set_backend(name):
                    model(x)
            return call

        calls = {"torch": eager("torch"), "fused": eager("auto"),
                 "torch_graph": graph_of(model, x, "torch"), "fused_graph": graph_of(model, x, "auto")}
        for call in calls.values():
            for _ in range(3):
                call()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(repeats):
            for k, call in calls.items():
                times[k].append(timed(call))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "dtype": dname, "batch": batch,
            "median_ms": med, "speedup_fused_eager": med["torch"] / med["fused"],
            "speedup_fused_graph": med["torch_graph"] / med["fused_graph"], "relative_error_vs_torch": error,
            "logits_norm": outs["torch"].norm().item()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["fp16:256", "fp16:32", "bf16:256"], metavar="DTYPE:BATCH")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--configs", type=Path, help="a tune_triton.py result to use instead of triton_configs.py")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    if args.configs is not None:
        from sepconv.backends import triton_configs

        tuned = json.loads(args.configs.read_text())["configs"]
        triton_configs.CONFIGS.update({k: tuple(v) for k, v in tuned.items()})
    for case in args.cases:
        dname, batch = case.split(":")
        print(json.dumps(run_case(dname, int(batch), args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
