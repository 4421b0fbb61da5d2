"""The study's results: summary per variant, tables, findings, ``report.md`` and ``results.json`` (atomic)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import torch

from .._files import atomic_write_text
from .config import VARIANTS


def write_json(path: Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: dict) -> list[dict]:
    """One row per finished variant: counts, latency, mean training time, accuracy mean ± std.

    Example:
        >>> results = {"config": {"variants": ["a"]}, "costs": {"a": {"params": 10, "macs": 90}},
        ...            "runs": {"a": [{"test_acc": 98.0, "train_time_s": 2.0}, {"test_acc": 99.0,
        ...                                                                     "train_time_s": 3.0}]}}
        >>> row = summarize(results)[0]
        >>> row["acc_mean"], round(row["acc_std"], 3), row["train_time_s"]
        (98.5, 0.707, 2.5)
    """
    rows = []
    for variant in results["config"]["variants"]:
        runs = results["runs"].get(variant, [])
        if not runs:
            continue
        mean, std = _mean_std([r["test_acc"] for r in runs])
        cost = results.get("costs", {}).get(variant, {})
        latency = results.get("latency", {}).get(variant, {})
        rows.append({"variant": variant, "description": VARIANTS.get(variant, ("", "", ""))[2],
                     "params": cost.get("params"), "macs": cost.get("macs"),
                     "latency_b1_ms": latency.get("batch1_ms"), "latency_b64_ms": latency.get("batch64_ms"),
                     "train_time_s": statistics.fmean(r["train_time_s"] for r in runs),
                     "acc_mean": mean, "acc_std": std, "seeds": len(runs)})
        for key in ("before_finetune", "calibrated"):  # the convert variant's accuracies without training
            if all(f"test_acc_{key}" in r for r in runs):
                values = [r[f"test_acc_{key}"] for r in runs]
                rows[-1][f"acc_{key}_mean"], rows[-1][f"acc_{key}_std"] = _mean_std(values)
        if variant == "convert":  # the training budgets of its three accuracies
            rows[-1]["finetune_epochs"] = results["config"].get("finetune_epochs")
            rows[-1]["calibration_images"] = runs[0].get("conversion", {}).get("calibration_images")
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_rows(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the results table (shared by the terminal and the report).

    Example:
        >>> header, rows = table_rows([{"variant": "a", "params": 1000, "macs": 2_000_000, "latency_b1_ms": 0.5,
        ...     "latency_b64_ms": 2.0, "train_time_s": 3.0, "acc_mean": 98.5, "acc_std": 0.25, "seeds": 2}])
        >>> dict(zip(header, rows[0]))["test accuracy %"]
        '98.50 ± 0.25'
    """
    base = next((r for r in summary if r["variant"] == "standard"), summary[0] if summary else None)
    header = ["variant", "params", "MACs", "MACs vs std", "latency b1 ms", "latency b64 ms", "train s",
              "test accuracy %"]
    rows = []
    for r in summary:
        ratio = base["macs"] / r["macs"] if base and r["macs"] else None
        name = r["variant"]
        if "acc_before_finetune_mean" in r:
            calibrated = f", {r['acc_calibrated_mean']:.1f}% calibrated" if "acc_calibrated_mean" in r else ""
            name += f" ({r['acc_before_finetune_mean']:.1f}% weight-only{calibrated}, before FT)"
        rows.append([name, _fmt(r["params"], ","), _fmt(r["macs"], ","),
                     "–" if ratio is None else "1.00x" if ratio == 1 else f"{ratio:.2f}x fewer" if ratio > 1 else
                     f"{1 / ratio:.2f}x more",
                     _fmt(r["latency_b1_ms"], ".3f"), _fmt(r["latency_b64_ms"], ".2f"),
                     _fmt(r["train_time_s"], ".1f"), f"{r['acc_mean']:.2f} ± {r['acc_std']:.2f}"])
    return header, rows


def findings(summary: list[dict]) -> list[str]:
    """Plain-language comparisons against the standard network, computed from the numbers."""
    by = {r["variant"]: r for r in summary}
    base = by.get("standard")
    lines: list[str] = []
    if base is None:
        return lines

    def compare(name: str) -> str:
        r = by[name]
        delta = r["acc_mean"] - base["acc_mean"]
        noise = math.hypot(r["acc_std"], base["acc_std"])
        speed = ""
        if r.get("latency_b64_ms") and base.get("latency_b64_ms"):
            speed = (f"; measured latency {base['latency_b1_ms'] / r['latency_b1_ms']:.2f}x at batch 1, "
                     f"{base['latency_b64_ms'] / r['latency_b64_ms']:.2f}x at batch 64 (>1 = faster)")
        return (f"**{name}**: {base['macs'] / r['macs']:.2f}x fewer multiply-adds, "
                f"{base['params'] / r['params']:.2f}x fewer parameters, accuracy {delta:+.2f} points "
                f"(seed spread ±{noise:.2f}){speed}.")

    for name in by:
        if name != "standard":
            lines.append(compare(name))
    conv = by.get("convert")
    if conv and "acc_before_finetune_mean" in conv:
        calibrated = (f"; after the calibrated refit (no training: {conv.get('calibration_images')} unlabelled "
                      "training images, least squares) "
                      f"{conv['acc_calibrated_mean']:.2f} ± {conv['acc_calibrated_std']:.2f}%"
                      if "acc_calibrated_mean" in conv else "")
        lines.append(f"**convert** (no training from scratch): right after `sepconv.convert` (weight-only, no "
                     f"training) the standard network scores {conv['acc_before_finetune_mean']:.2f} ± "
                     f"{conv['acc_before_finetune_std']:.2f}%{calibrated}; after the distillation fine-tune "
                     f"({conv.get('finetune_epochs')} epochs from the calibrated network, labels and teacher logits) "
                     f"{conv['acc_mean']:.2f} ± {conv['acc_std']:.2f}%.")
    for kind in ("depthwise", "spatial"):
        early, late = by.get(f"{kind}-early"), by.get(f"{kind}-late")
        if early and late:
            delta = early["acc_mean"] - late["acc_mean"]
            noise = math.hypot(early["acc_std"], late["acc_std"])
            verdict = ("within the seed spread: this run does not separate the two placements"
                       if abs(delta) <= noise else
                       "early placement is better" if delta > 0 else "late placement is better")
            lines.append(f"Placement ({kind}, the seed's hypothesis that separable layers belong early): early "
                         f"{early['acc_mean']:.2f}% at {early['macs']:,} MACs vs late {late['acc_mean']:.2f}% at "
                         f"{late['macs']:,} MACs, difference {delta:+.2f} points (spread ±{noise:.2f}): {verdict}.")
    return lines


def write_report(results: dict, out: Path) -> Path:
    """Write ``report.md`` (atomically) from ``results``; returns its path."""
    config, summary = results["config"], results.get("summary", [])
    header, rows = table_rows(summary)
    lines = ["# sepconv study", "",
             f"Data: {results['data']['summary']}. Network: `small_cnn(widths={config['widths']}, "
             f"stem={config['stem']}, kernel_size={config['kernel_size']})`; {config['epochs']} epochs, batch "
             f"{config['batch_size']}, AdamW lr {config['lr']} (cosine), weight decay {config['weight_decay']}; "
             f"seeds {config['seed']}..{config['seed'] + config['seeds'] - 1}; {results.get('world_size', 1)} "
             f"process(es). Test accuracy is mean ± std over the seeds, measured once after training; "
             f"MACs = multiply-adds for one image; latency = median over {config['latency_reps']} interleaved "
             f"rounds, on {torch.get_num_threads()} CPU thread(s).", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in
                                                         range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Findings", ""] + [f"- {line}" for line in findings(summary)]
    lines += ["", "## Variants", ""] + [f"- `{r['variant']}`: {r['description']}" for r in summary]
    plots = results.get("plots", {})
    if plots:
        lines += ["", "## Plots", ""] + [f"![{title}]({name})" for title, name in plots.items()]
    if "wall_time_s" in results:
        lines += ["", f"Wall time of the study: {results['wall_time_s']:.1f} s."]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
