"""The plan of a study before it trains: the automatic choices, said in words, and the expected duration.

:func:`estimate` times two training steps of every variant still to train (on copies, after one warm-up step) and
turns them into seconds per epoch; :func:`plan_study` does the same without training anything (``sepconv study
--estimate``).

Example:
    >>> plan = plan_study(StudyConfig(variants=("standard", "depthwise"), seeds=1, device="cpu"))
    >>> plan["epochs"], plan["runs"], plan["expected_s"] > 0
    (15, 2, True)
"""

from __future__ import annotations

import math

import torch

from .budget import Eta, amp_dtype, format_seconds, measure_step_seconds, threads
from .config import StudyConfig
from .data import Dataset, load
from .training import build_model

__all__ = ["describe", "estimate", "plan_study", "resolve"]

_EVAL_BATCH = 512
_DISTILLATION_COST = 1.3  # a distillation step: the student's step plus the teacher's forward pass


def estimate(config: StudyConfig, data: Dataset, todo: list[tuple[str, int]]) -> Eta:
    """An :class:`~sepconv.study.budget.Eta` of the runs ``todo`` from measured training steps.

    ``config`` is resolved (epochs, threads, device chosen) and ``data`` lives on ``config.device``. The
    ``convert`` variant is estimated from the standard network's step (its architecture exists only after the
    conversion).
    """
    batch = min(config.batch_size, len(data.y_train))
    x, y = data.x_train[:batch], data.y_train[:batch]
    dtype = amp_dtype(config.device, config.amp)
    steps = math.ceil(len(data.y_train) / config.batch_size)
    per_step: dict[str, float] = {}
    estimate_s: dict[str, float] = {}
    for variant in dict.fromkeys(v for v, _ in todo):
        base = "standard" if variant == "convert" else variant
        if base not in per_step:
            model = build_model(base, data, config).to(config.device)
            per_step[base] = measure_step_seconds(model, x, y, dtype)
        step = per_step[base] * (_DISTILLATION_COST if variant == "convert" else 1.0)
        evaluation = per_step[base] / 3 * math.ceil(len(data.y_val) / _EVAL_BATCH) * _EVAL_BATCH / batch
        estimate_s[variant] = steps * step + evaluation
    remaining = [(v, config.finetune_epochs if v == "convert" else config.epochs) for v, _ in todo]
    return Eta(estimate_s, remaining)  # type: ignore[arg-type]


def resolve(config: StudyConfig, data: Dataset) -> StudyConfig:
    """``config`` with every automatic choice made for ``data`` (on the CPU), the thread count by measurement.

    Where :func:`~sepconv.study.budget.auto_threads` proposes several threads (images of 16x16 or more), one
    training step of the standard network is timed with 1 thread and with that many, and the extra threads are
    kept only when they are at least 15% faster: on a machine busy with other work, intra-op threads wait for
    each other and one thread is often the fastest.
    """
    resolved = config.resolved(len(data.y_train), data.image_shape)
    if config.threads is None and resolved.threads > 1:  # type: ignore[operator]
        batch = min(config.batch_size, len(data.y_train))
        model = build_model("standard", data, resolved)
        seconds = {}
        for count in (1, resolved.threads):
            with threads(count):  # type: ignore[arg-type]
                seconds[count] = measure_step_seconds(model, data.x_train[:batch], data.y_train[:batch],
                                                      amp_dtype("cpu", config.amp), steps=3)
        resolved.threads = resolved.threads if seconds[resolved.threads] < 0.85 * seconds[1] else 1
    return resolved


def describe(config: StudyConfig, chosen: list[str], data: Dataset, runs: int, seconds: float) -> str:
    """One paragraph: epochs, fine-tune epochs, threads, device, precision, and the expected training time."""
    def why(name: str, reason: str) -> str:
        return f" ({reason})" if name in chosen else ""

    h, w = data.image_shape[1:]
    thread_reason = f"chosen for {h}x{w} images" if h * w < 256 else "the faster of 1 and more, timed on this machine"
    precision = {None: "float32", torch.bfloat16: "bfloat16 mixed precision",
                 torch.float16: "float16 mixed precision"}[amp_dtype(config.device, config.amp)]
    finetune = "" if "convert" not in config.variants else (
        f"convert fine-tune {_count(config.finetune_epochs, 'epoch')}"
        f"{why('finetune_epochs', 'a third of the epochs')}, ")
    return (f"plan: {_count(config.epochs, 'epoch')}"
            f"{why('epochs', f'chosen for {len(data.y_train)} training images')}, {finetune}"
            f"{_count(config.threads, 'CPU thread')}"
            f"{why('threads', thread_reason)}, "
            f"device {config.device}{why('device', 'auto')}, {precision}; {runs} runs to train, expected training "
            f"time about {format_seconds(seconds)} (from measured training steps; the ETA is refined after every "
            f"epoch)")


def _count(n: int | None, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def plan_study(config: StudyConfig) -> dict:
    """The automatic choices and the expected training time of ``config``, without training or writing anything.

    Returns:
        ``{"epochs", "finetune_epochs", "threads", "device", "amp", "runs", "expected_s", "text"}``.
    """
    config.check()
    data = load(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    resolved = resolve(config, data)
    todo = [(v, config.seed + i) for v in resolved.variants for i in range(resolved.seeds)]
    with threads(resolved.threads):  # type: ignore[arg-type]
        seconds = estimate(resolved, data.to(resolved.device), todo).seconds_left()
    return {"epochs": resolved.epochs, "finetune_epochs": resolved.finetune_epochs, "threads": resolved.threads,
            "device": resolved.device, "amp": resolved.amp, "runs": len(todo), "expected_s": seconds,
            "text": describe(resolved, config.automatic(), data, len(todo), seconds)}
