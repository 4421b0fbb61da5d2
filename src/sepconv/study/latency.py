"""Latency of the study's variants: each in its fused inference form, timed interleaved in one process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from ..optimize import optimize


def measure_latency(models: dict[str, nn.Module], image_shape: Sequence[int], reps: int,
                    batches: Sequence[int] = (1, 64)) -> dict[str, dict[str, float]]:
    """Median forward time in milliseconds per model and batch size, all timed interleaved in one process.

    Every model is timed on the device of its weights, in its inference form, :func:`sepconv.optimize` (BatchNorm
    folded, channels_last weights, activations fused into the separable layers, the native CPU kernel where it
    runs), so standard and separable variants get the same treatment.

    Each round times every model once at every batch size (a few calls each, averaged), so slow drifts of the
    machine (other processes, clock) hit all variants alike; the median over ``reps`` rounds is reported.

    Example:
        >>> lat = measure_latency({"a": nn.Conv2d(1, 2, 3)}, (1, 8, 8), reps=2)
        >>> sorted(lat["a"]), lat["a"]["batch1_ms"] > 0
        (['batch1_ms', 'batch64_ms'], True)
    """
    models = {name: optimize(model) for name, model in models.items()}
    device = next(iter(next(iter(models.values())).parameters())).device
    inputs = {b: torch.randn(b, *image_shape, device=device) for b in batches}
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in models}
    with torch.inference_mode():
        for model in models.values():  # warm-up
            for b in batches:
                model(inputs[b])
        for _ in range(reps):
            for name, model in models.items():
                for b in batches:
                    times[name][b].append(_time_ms(model, inputs[b], max(1, 16 // b)))
    return {name: {f"batch{b}_ms": statistics.median(t[b]) for b in batches} for name, t in times.items()}


def _time_ms(model: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Mean milliseconds of ``calls`` forward passes (the GPU synchronised before and after)."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    began = time.perf_counter()
    for _ in range(calls):
        model(x)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return (time.perf_counter() - began) * 1000 / calls
