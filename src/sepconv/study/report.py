"""The study's results: summary per variant, tables, findings, ``report.md`` and ``results.json`` (atomic)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from .._files import atomic_write_text
from .config import VARIANTS


def finite(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by ``None``, so that it is valid JSON (no bare ``NaN``).

    Example:
        >>> finite({"loss": float("nan"), "acc": [99.5, float("inf")]})
        {'loss': None, 'acc': [99.5, None]}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(value) for value in obj]
    return obj


def write_json(path: Path, obj: object) -> None:
    """Atomically write ``obj`` as indented, valid JSON (NaN and infinities become ``null``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(finite(obj), indent=1, allow_nan=False) + "\n")


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
                     "training": _budget(variant, results["config"]),
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
            conversion = runs[0].get("conversion", {})
            rows[-1]["calibration_images"] = conversion.get("calibration_images")
            rows[-1]["calibration_images_used"] = conversion.get("calibration_images_used")
    return rows


def _budget(variant: str, config: dict) -> str:
    """The training a variant got: ``'15 epochs'``, or for ``convert`` the standard's epochs plus the fine-tune."""
    epochs, finetune = config.get("epochs"), config.get("finetune_epochs")
    if variant == "convert":
        return f"{epochs} + {finetune} FT"
    return f"{epochs}"


def accuracy_text(row: dict) -> str:
    """``'98.50 ± 0.25'`` over several seeds, ``'98.50 (n=1)'`` for one seed (no spread to show).

    Example:
        >>> accuracy_text({"acc_mean": 98.5, "acc_std": 0.0, "seeds": 1})
        '98.50 (n=1)'
    """
    if row.get("seeds", 2) < 2:
        return f"{row['acc_mean']:.2f} (n=1)"
    return f"{row['acc_mean']:.2f} ± {row['acc_std']:.2f}"


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
    header = ["variant", "params", "MACs", "MACs vs std", "latency b1 ms", "latency b64 ms", "epochs", "train s",
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
                     _fmt(r["latency_b1_ms"], ".3f"), _fmt(r["latency_b64_ms"], ".2f"), r.get("training", "–"),
                     _fmt(r["train_time_s"], ".1f"), accuracy_text(r)])
    return header, rows


def verdict(delta: float, a: dict, b: dict) -> str:
    """Whether an accuracy difference ``delta`` (points) between rows ``a`` and ``b`` exceeds their seed spread.

    The spread is ``hypot(std_a, std_b)``, the standard deviation of the difference of two single runs; with one
    seed there is no spread, and no conclusion is drawn.

    Example:
        >>> verdict(-1.2, {"acc_std": 0.3, "seeds": 3}, {"acc_std": 0.4, "seeds": 3})
        'accuracy -1.20 points, beyond the seed spread (±0.50)'
        >>> verdict(0.3, {"acc_std": 0.0, "seeds": 1}, {"acc_std": 0.0, "seeds": 1})
        'accuracy +0.30 points from a single seed (n=1): no spread to judge it by, no conclusion on accuracy'
    """
    if min(a.get("seeds", 2), b.get("seeds", 2)) < 2:
        return f"accuracy {delta:+.2f} points from a single seed (n=1): no spread to judge it by, no conclusion on " \
               f"accuracy"
    noise = math.hypot(a["acc_std"], b["acc_std"])
    where = "beyond" if abs(delta) > noise else "within"
    shown = "" if where == "beyond" else ": no accuracy difference shown"
    return f"accuracy {delta:+.2f} points, {where} the seed spread (±{noise:.2f}){shown}"


def _compare(row: dict, base: dict) -> str:
    """One finding: a variant against the standard network."""
    speed = ""
    if row.get("latency_b64_ms") and base.get("latency_b64_ms"):
        speed = (f"; measured latency {base['latency_b1_ms'] / row['latency_b1_ms']:.2f}x at batch 1, "
                 f"{base['latency_b64_ms'] / row['latency_b64_ms']:.2f}x at batch 64 (>1 = faster)")
    return (f"**{row['variant']}**: {base['macs'] / row['macs']:.2f}x fewer multiply-adds, "
            f"{base['params'] / row['params']:.2f}x fewer parameters, "
            f"{verdict(row['acc_mean'] - base['acc_mean'], row, base)}{speed}.")


def _placement(kind: str, early: dict, late: dict) -> str:
    """The finding on the seed's hypothesis that separable layers belong early."""
    delta = early["acc_mean"] - late["acc_mean"]
    text = verdict(delta, early, late)
    if "beyond the seed spread" in text:
        text += ": early placement is better" if delta > 0 else ": late placement is better"
    return (f"Placement ({kind}, the seed's hypothesis that separable layers belong early): early "
            f"{accuracy_text(early)}% at {early['macs']:,} MACs vs late {accuracy_text(late)}% at {late['macs']:,} "
            f"MACs: {text}.")


def findings(summary: list[dict]) -> list[str]:
    """Plain-language comparisons against the standard network, computed from the numbers.

    Accuracy differences are called differences only where they exceed the seed spread (:func:`verdict`).
    """
    by = {r["variant"]: r for r in summary}
    base = by.get("standard")
    if base is None:
        return []
    lines = [_compare(row, base) for name, row in by.items() if name != "standard"]
    conv = by.get("convert")
    if conv and "acc_before_finetune_mean" in conv:
        before = {"acc_mean": conv["acc_before_finetune_mean"], "acc_std": conv["acc_before_finetune_std"],
                  "seeds": conv["seeds"]}
        calibrated = ""
        if "acc_calibrated_mean" in conv:
            after_refit = {"acc_mean": conv["acc_calibrated_mean"], "acc_std": conv["acc_calibrated_std"],
                           "seeds": conv["seeds"]}
            given, used = conv.get("calibration_images"), conv.get("calibration_images_used")
            images = f"{used} of {given}" if used not in (None, given) else f"{given}"
            calibrated = (f"; after the calibrated refit (no training: {images} unlabelled "
                          f"training images, least squares) {accuracy_text(after_refit)}%")
        lines.append(f"**convert** (no training from scratch): right after `sepconv.convert` (weight-only, no "
                     f"training) the standard network scores {accuracy_text(before)}%{calibrated}; after the "
                     f"distillation fine-tune ({conv['training']} epochs) {accuracy_text(conv)}%.")
    for kind in ("depthwise", "spatial"):
        early, late = by.get(f"{kind}-early"), by.get(f"{kind}-late")
        if early and late:
            lines.append(_placement(kind, early, late))
    return lines


def write_report(results: dict, out: Path) -> Path:
    """Write ``report.md`` (atomically) from ``results``; returns its path."""
    config, summary = results["config"], results.get("summary", [])
    header, rows = table_rows(summary)
    lines = ["# sepconv study", "",
             f"Data: {results['data']['summary']}. Network: `small_cnn(widths={config['widths']}, "
             f"stem={config['stem']}, kernel_size={config['kernel_size']})`; {config['epochs']} epochs from scratch "
             f"(`convert`: the trained standard network plus {config['finetune_epochs']} fine-tune "
             f"epoch{'' if config['finetune_epochs'] == 1 else 's'}), batch "
             f"{config['batch_size']}, AdamW lr {config['lr']} (cosine), weight decay {config['weight_decay']}"
             f"{', bfloat16/float16 mixed precision' if config.get('amp') else ''}; seeds {config['seed']}.."
             f"{config['seed'] + config['seeds'] - 1}; {results.get('world_size', 1)} process(es) on "
             f"{config.get('device', 'cpu')}, {config.get('threads')} CPU thread(s). Test accuracy is mean ± std "
             f"over the seeds ((n=1): a single seed, no spread), measured once after training; MACs = multiply-adds "
             f"for one image; latency = median over {config['latency_reps']} interleaved rounds.", "",
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
