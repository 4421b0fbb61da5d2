"""Tune the fused Triton kernel: time every candidate launch configuration on the MobileNet v1 layer geometries.

For each distinct (geometry, batch, dtype) it checks every configuration of
:data:`sepconv.backends.triton.CANDIDATES` against PyTorch's composition, times it with
``triton.testing.do_bench`` (CUDA events, L2 flushed before every call, median), and keeps the fastest. The
result is a JSON file; ``--write-module`` turns it into ``src/sepconv/backends/triton_configs.py``, the table the
kernel reads (:func:`sepconv.backends.triton.choose_config`).

Usage::

    python benchmarks/tune_triton.py --out tuned.json                  # on a GPU: fp16+bf16, batch 1/32/256
    python benchmarks/tune_triton.py --write-module tuned.json         # anywhere: write triton_configs.py
    TRITON_INTERPRET=1 python benchmarks/tune_triton.py --dry-run      # on CPU: exercise the code paths
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_triton import DTYPES, MOBILENET_V1, layer_case

MODULE = Path(__file__).resolve().parents[1] / "src" / "sepconv" / "backends" / "triton_configs.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp16", "bf16"])
    p.add_argument("--batch", nargs="+", type=int, default=[256, 32, 1], help="in the order tuned")
    p.add_argument("--budget-s", type=float, default=float("inf"), help="stop starting new cases after this long")
    p.add_argument("--out", type=Path, default=Path("tuned_triton.json"))
    p.add_argument("--rep-ms", type=float, default=20.0, help="do_bench time per configuration")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                   help="processes that compile the candidates before the sweep")
    p.add_argument("--dry-run", action="store_true", help="one tiny case, two configurations (CPU interpreter)")
    p.add_argument("--write-module", type=Path, metavar="JSON", help="write triton_configs.py from a tuning result")
    return p.parse_args(argv)


def geometries(batches: list[int]) -> list[tuple[int, int, int, int, int]]:
    """Distinct (batch, size, cin, cout, stride) of the MobileNet v1 layers."""
    return sorted({(b, *layer) for b in batches for layer in MOBILENET_V1},
                  key=lambda g: (batches.index(g[0]), -g[1], g[2]))


def timer(dry_run: bool, rep_ms: float):
    if dry_run:
        def cpu_time(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return cpu_time
    from triton.testing import do_bench

    return lambda fn: do_bench(fn, warmup=max(rep_ms / 4, 1), rep=rep_ms, return_mode="median") / 1e3


def _compile_one(task: tuple[str, int, tuple[int, ...]]) -> str:
    """Compile (and run once, on a small input of the same specialization) one dtype/stride/configuration; in a
    worker process, so that Triton's on-disk cache holds it before the timed sweep."""
    from sepconv.backends import triton as K

    dname, stride, config = task
    c = layer_case(16, 32, 64, stride, 3, 1, DTYPES[dname])
    wdw, shift = K.fold_depthwise(c["dw"], c["dw_b"], None, None)
    try:
        K.Launch(c["x"], wdw, shift, c["pw"].reshape(64, 32).t().contiguous(), c["pw_b"], (3, 3), stride, 1,
                 "relu", "relu", "tf32", config)(c["x"])
        torch.cuda.synchronize()
        return "ok"
    except Exception as err:
        return f"{type(err).__name__}: {str(err)[:100]}"


def precompile(dtypes: list[str], workers: int) -> None:
    """Compile every candidate for every dtype and stride in ``workers`` processes (Triton compiles one kernel on
    one core, a few seconds each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from sepconv.backends import triton as K

    tasks = [(d, s, c) for d in dtypes for s in (1, 2) for c in K.CANDIDATES]
    started = time.monotonic()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_compile_one, tasks))
    failed = [(t, r) for t, r in zip(tasks, results) if r != "ok"]
    print(f"precompiled {len(tasks)} kernels in {time.monotonic() - started:.0f} s with {workers} processes"
          + "".join(f"\n  {t}: {r}" for t, r in failed), flush=True)


def tune(args: argparse.Namespace) -> int:
    from sepconv.backends import triton as K

    if args.workers > 1 and not args.dry_run:
        try:
            precompile(args.dtype, args.workers)
        except Exception as err:  # the sweep compiles what is missing itself, only slower
            print(f"precompiling failed ({type(err).__name__}: {err}); the sweep compiles one by one", flush=True)

    device = "cpu" if args.dry_run else "cuda"
    cases = [(1, 9, 24, 40, 2)] if args.dry_run else geometries(args.batch)
    candidates = K.CANDIDATES[:2] if args.dry_run else K.CANDIDATES
    dtypes = ["fp32"] if args.dry_run else args.dtype
    measure = timer(args.dry_run, args.rep_ms)
    best: dict[str, list[int]] = {}
    timings: dict[str, dict[str, float]] = {}
    started = time.monotonic()
    for dname in dtypes:
        dtype = DTYPES[dname]
        for batch, size, cin, cout, stride in cases:
            if time.monotonic() - started > args.budget_s:
                print(f"budget of {args.budget_s:.0f} s spent: {dname} b{batch} {size}² {cin}->{cout} not tuned")
                continue
            c = layer_case(size, cin, cout, stride, 3, batch, dtype, device)
            wdw, shift = K.fold_depthwise(c["dw"], c["dw_b"], None, None)
            wpw = c["pw"].reshape(cout, cin).t().contiguous()
            ref = F.relu(F.conv2d(F.relu(F.conv2d(c["x"].float(), c["dw"].float(), c["dw_b"].float(), stride, 1,
                                                  1, cin)).to(dtype).float(), c["pw"].float(), c["pw_b"].float()))
            times: dict[str, float] = {}
            key = None
            for config in candidates:
                try:
                    run = K.Launch(c["x"], wdw, shift, wpw, c["pw_b"], (3, 3), stride, 1, "relu", "relu", "tf32",
                                   config)
                    key = run.key
                    got = run(c["x"]).float()
                    err = ((got - ref).norm() / ref.norm()).item()
                    if not err < 2e-2:
                        print(f"  {config}: wrong result (relative error {err:.1e}); skipped", flush=True)
                        continue
                    if run._fits != tuple(config):  # stepped down for shared memory: not this candidate
                        print(f"  {config}: does not fit (ran as {run._fits}); skipped", flush=True)
                        continue
                    times[str(list(config))] = measure(lambda run=run, x=c["x"]: run(x))
                except Exception as err:  # a configuration that fails to compile is skipped, not fatal
                    print(f"  {config}: {type(err).__name__}: {str(err)[:120]}", flush=True)
            if not times or key is None:
                print(f"{dname} b{batch} {size}² {cin}->{cout} s{stride}: no configuration ran", flush=True)
                continue
            winner = min(times, key=times.__getitem__)
            default = K.default_config(run.m, cout, cin, dtype)
            default_t = times.get(str(list(default)))
            best[key], timings[key] = json.loads(winner), times
            note = f"default {default_t * 1e6:.1f} us" if default_t else "default not a candidate"
            save(args, best, timings)
            print(f"{key}: best {winner} {times[winner] * 1e6:.1f} us ({note}; median of candidates "
                  f"{statistics.median(times.values()) * 1e6:.1f} us) [{time.monotonic() - started:.0f} s]",
                  flush=True)
    save(args, best, timings)
    print(f"wrote {args.out}: {len(best)} geometries")
    return 0


def save(args: argparse.Namespace, best: dict, timings: dict) -> None:
    """Write the result so far (atomically; after every case, so a run stopped early keeps what it measured)."""
    meta = {"device": "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(),
            "torch": torch.__version__, "triton": __import__("triton").__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "rep_ms": args.rep_ms}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "configs": best, "timings_s": timings}, indent=1))
    os.replace(tmp, args.out)


def write_module(source: Path, target: Path = MODULE) -> None:
    """Write ``triton_configs.py`` from a tuning result (keeping the module's docstring)."""
    data = json.loads(source.read_text())
    doc = target.read_text().split('"""')[1]
    configs = {k: tuple(v) for k, v in sorted(data["configs"].items())}
    meta = data["meta"]
    rows = "".join(f"    {json.dumps(k)}: {v},\n" for k, v in configs.items())
    text = (f'"""{doc}"""\n\nDEVICE = {json.dumps(meta["device"])}\nMEASURED = {json.dumps(meta["date"])}  '
            f'# torch {meta["torch"]}, triton {meta["triton"]}\n'
            f'CONFIGS: dict[str, tuple[int, int, int, int, int]] = {{\n{rows}}}\n')
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    print(f"wrote {target}: {len(configs)} geometries measured on {meta['device']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_module is not None:
        write_module(args.write_module)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("tune_triton: no CUDA device is available (use --dry-run with TRITON_INTERPRET=1 on CPU)",
              file=sys.stderr)
        return 2
    return tune(args)


if __name__ == "__main__":
    sys.exit(main())
