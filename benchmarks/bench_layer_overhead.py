"""Per-call time of small sepconv layers, where the Python work (checks, dispatch) is most of the time.

Compares two source trees of sepconv (e.g. before and after a change to the layers' ``forward``): each round runs
one short worker process per tree, alternating, and each worker times every case; the medians over rounds and the
ratio (tree B / tree A) are reported with the machine and its load.

Run: ``python benchmarks/bench_layer_overhead.py A_SRC B_SRC [OUT_STEM]`` (``A_SRC``/``B_SRC``: the ``src``
folders); writes ``benchmarks/results/<OUT_STEM>.{json,md}`` (default ``layer_overhead``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROUNDS = 7
WORKER = r"""
import json, time, torch, sepconv
torch.set_num_threads(1)
cases = {
    "separable2d eval no_grad (oneDNN path)": (sepconv.SeparableConv2d(8, 16, 3, padding="same").eval(), True),
    "separable2d train (channels_last path)": (sepconv.SeparableConv2d(8, 16, 3, padding="same"), False),
    "separable1d eval no_grad": (sepconv.SeparableConv1d(8, 16, 3, padding="same").eval(), True),
    "depthwise2d eval no_grad": (sepconv.DepthwiseConv2d(8, 3, padding="same").eval(), True),
    "spatial2d eval no_grad": (sepconv.SpatiallySeparableConv2d(8, 16, 3, padding=1).eval(), True),
    "separable2d optimize no_grad (ticket)": (sepconv.optimize(torch.nn.Sequential(
        sepconv.SeparableConv2d(8, 16, 3, padding="same", activation="relu")))[0], True),
    "nn.Conv2d 3x3 eval no_grad (reference)": (torch.nn.Conv2d(8, 16, 3, padding=1).eval(), True),
}
inputs = {1: torch.randn(1, 8, 16), 2: torch.randn(1, 8, 8, 8)}
out = {}
for name, (layer, no_grad) in cases.items():
    x = inputs[getattr(layer, "spatial_dims", 2)]
    ctx = torch.no_grad() if no_grad else torch.enable_grad()
    with ctx:
        for _ in range(200):
            layer(x)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            for _ in range(200):
                layer(x)
            times.append((time.perf_counter() - start) / 200)
    out[name] = sorted(times)[len(times) // 2]
print(json.dumps(out))
"""


def run(src: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    a_src, b_src = sys.argv[1], sys.argv[2]
    stem = sys.argv[3] if len(sys.argv) > 3 else "layer_overhead"
    load_before = os.getloadavg()
    rounds: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for _ in range(ROUNDS):
        rounds["A"].append(run(a_src))
        rounds["B"].append(run(b_src))
    cases = list(rounds["A"][0])
    rows = []
    for case in cases:
        a = statistics.median(r[case] for r in rounds["A"])
        b = statistics.median(r[case] for r in rounds["B"])
        rows.append({"case": case, "a_us": a * 1e6, "b_us": b * 1e6, "ratio_b_over_a": b / a})
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": 1,
              "rounds": ROUNDS, "load_before": load_before, "load_after": os.getloadavg(),
              "a_src": a_src, "b_src": b_src, "rows": rows}
    results = Path(__file__).resolve().parent / "results"
    (results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Layer call overhead (A = `{a_src}`, B = `{b_src}`)", "",
             f"{ROUNDS} alternating rounds, medians, 1 thread, {os.cpu_count()} CPUs; load average before "
             f"{load_before[0]:.2f}, after {result['load_after'][0]:.2f}.", "",
             "| case | A µs | B µs | B / A |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['case']} | {r['a_us']:.1f} | {r['b_us']:.1f} | {r['ratio_b_over_a']:.2f} |" for r in rows]
    (results / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
