"""Record a CPU run of `sepconv bench` into benchmarks/results/ (JSON + markdown). Not a test.

Usage: PYTHONPATH=src python benchmarks/run_cpu.py [repeats] [threads]
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import torch

from sepconv.cli.bench import render, write_json
from sepconv.study.bench import run_benchmarks

if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    report = run_benchmarks(repeats=repeats)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = "cpu" if threads == 2 else f"cpu_{threads}thread"
    write_json(report, str(out / f"{name}.json"))
    text = io.StringIO()
    with redirect_stdout(text):
        render(report)
    m = report["machine"]
    header = (f"# sepconv bench, CPU\n\n{m['cpu']}, {m['cores']} cores, torch {m['torch']} "
              f"({m['torch_threads']} threads), {m['date']}, {repeats} interleaved repeats.\n"
              f"Load average (1, 5, 15 min) when the run started: {m['load_average']}.\n\n```\n")
    tmp = out / f"{name}.md.tmp"
    tmp.write_text(header + text.getvalue() + "```\n")
    tmp.replace(out / f"{name}.md")
    print(text.getvalue())
