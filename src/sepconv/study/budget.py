"""The study's budget: epochs, threads, device and precision chosen from the data and the machine; time estimates.

Options left to ``None`` (``"auto"`` for the device) are chosen here, deterministically, so that a study repeats for
a given seed, thread count and machine:

- **epochs**: enough passes to show the network about :data:`IMAGES_SEEN` training images, between
  :data:`MIN_EPOCHS` and :data:`MAX_EPOCHS` (the bundled digits: 15 epochs; 10,000 images: 4; MNIST: 3);
- **fine-tune epochs** of the ``convert`` variant: a third of the epochs, at least one;
- **threads**: one for images under 16x16 pixels, where every op is tiny and intra-op threads only add
  synchronisation; otherwise the CPU cores this process may use, at most :data:`MAX_AUTO_THREADS`;
- **device**: CUDA when torch sees a GPU, else the CPU;
- **mixed precision** (``amp``): bfloat16 autocast on the CPU and on GPUs that support it, float16 with loss
  scaling on older GPUs.

The duration is estimated from a few measured training steps of every variant (:func:`measure_step_seconds`)
and refined after every epoch by :class:`Eta`.

Example:
    >>> auto_epochs(1295), auto_epochs(7200), auto_epochs(54000), auto_finetune_epochs(15)
    (15, 4, 3, 5)
    >>> auto_threads((1, 8, 8), "cpu")
    1
    >>> eta = Eta({"a": 2.0, "b": 4.0}, [("a", 3), ("b", 3)])
    >>> eta.seconds_left()
    18.0
    >>> eta.epoch_done("a", 3.0)  # 'a' runs slower than estimated: 'b' is expected slower too
    >>> eta.seconds_left()
    24.0
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import IMAGES_SEEN, MAX_AUTO_THREADS, MAX_EPOCHS, MIN_EPOCHS
from ..errors import ArgumentError

__all__ = ["IMAGES_SEEN", "MAX_AUTO_THREADS", "MAX_EPOCHS", "MIN_EPOCHS", "Eta", "amp_dtype", "auto_epochs",
           "auto_finetune_epochs", "auto_threads", "available_cores", "format_seconds", "measure_step_seconds",
           "resolve_device", "threads"]

_SMALL_IMAGE_PIXELS = 16 * 16


def auto_epochs(n_train: int) -> int:
    """Epochs that show the network about :data:`IMAGES_SEEN` images, clamped to [MIN_EPOCHS, MAX_EPOCHS]."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, round(IMAGES_SEEN / max(n_train, 1))))


def auto_finetune_epochs(epochs: int) -> int:
    """Fine-tune epochs of the ``convert`` variant: a third of the training epochs, at least one."""
    return max(1, round(epochs / 3))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_threads(image_shape: Sequence[int], device: str) -> int:
    """Torch CPU threads for training on images of ``image_shape`` ``(C, H, W)`` on ``device``.

    On a GPU the CPU only feeds it: one thread. On the CPU, one thread for images under 16x16 pixels (measured
    on 8x8 digits: 2 threads gave no gain; on 28x28 images 2 threads trained 1.3 to 1.6x faster).
    """
    if not device.startswith("cpu") or image_shape[-1] * image_shape[-2] < _SMALL_IMAGE_PIXELS:
        return 1
    return min(available_cores(), MAX_AUTO_THREADS)


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads, then restore the previous number."""
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def resolve_device(spec: str) -> str:
    """``'auto'`` -> ``'cuda'`` (``'cuda:LOCAL_RANK'`` under torchrun) when a GPU is visible, else ``'cpu'``.

    Under torchrun, ``'auto'`` takes the GPUs only when there is one per process of the node.

    Raises:
        ArgumentError: ``spec`` is not auto, cpu, cuda or cuda:N, or asks for a GPU that torch does not see.
    """
    if not isinstance(spec, str):
        raise ArgumentError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec == "auto":
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        spec = "cuda" if torch.cuda.is_available() and per_node <= torch.cuda.device_count() else "cpu"
    if spec == "cpu":
        return spec
    kind, _, index = spec.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ArgumentError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if not torch.cuda.is_available():
        raise ArgumentError(f"device {spec!r}: torch sees no GPU (torch.cuda.is_available() is False); "
                            f"use --device cpu or auto")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ArgumentError(f"device {spec!r}: torch sees {count} GPU(s), cuda:0 to cuda:{count - 1}")
    if not index and "LOCAL_RANK" in os.environ:
        index = str(int(os.environ["LOCAL_RANK"]) % count)
    return f"cuda:{index or 0}"


def amp_dtype(device: str, amp: bool) -> torch.dtype | None:
    """The autocast dtype of mixed precision on ``device`` (``None`` without ``amp``)."""
    if not amp:
        return None
    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def measure_step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None,
                         steps: int = 2) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of a copy of ``model`` on ``(x, y)``.

    The model and the random number generators are left untouched (the copy trains, under ``fork_rng``).

    Example:
        >>> measure_step_seconds(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(8, 4),
        ...                      torch.zeros(8, dtype=torch.long), None) > 0
        True
    """
    device = str(x.device)
    with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
        net = copy.deepcopy(model).train()
        optimizer = torch.optim.AdamW(net.parameters())
        times = []
        for step in range(steps + 1):  # the first step warms up (allocations, kernel selection)
            _sync(device)
            began = time.perf_counter()
            with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _sync(device)
            if step:
                times.append(time.perf_counter() - began)
    return statistics.median(times)


def format_seconds(seconds: float) -> str:
    """``'42 s'``, ``'3 min 20 s'``, ``'1 h 05 min'``.

    Example:
        >>> format_seconds(42.4), format_seconds(200), format_seconds(3900)
        ('42 s', '3 min 20 s', '1 h 05 min')
    """
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Eta:
    """Time left in a study: estimated epoch times corrected by the epochs measured so far.

    Attributes:
        estimate: variant -> estimated seconds per epoch (from measured training steps).
        remaining: ``(variant, epochs left)`` of every run still to train, in order.
        measured: variant -> wall seconds of its finished epochs.
    """

    estimate: dict[str, float]
    remaining: list[tuple[str, int]]
    measured: dict[str, list[float]] = field(default_factory=dict)

    def epoch_seconds(self, variant: str) -> float:
        """Expected seconds of one epoch of ``variant``."""
        if self.measured.get(variant):
            return statistics.median(self.measured[variant])
        ratios = [statistics.median(times) / self.estimate[v] for v, times in self.measured.items()
                  if times and self.estimate.get(v)]
        return self.estimate.get(variant, 0.0) * (statistics.median(ratios) if ratios else 1.0)

    def seconds_left(self) -> float:
        return sum(epochs * self.epoch_seconds(variant) for variant, epochs in self.remaining)

    def epoch_done(self, variant: str, seconds: float) -> None:
        """Record a finished epoch of ``variant`` (the first run of that variant still listed)."""
        self.measured.setdefault(variant, []).append(seconds)
        self.skip(variant, 1)

    def skip(self, variant: str, epochs: int) -> None:
        """Drop ``epochs`` epochs of the current run of ``variant`` (done before a resume) from the remaining."""
        for i, (name, left) in enumerate(self.remaining):
            if name == variant:
                if left > epochs:
                    self.remaining[i] = (name, left - epochs)
                else:
                    del self.remaining[i]
                return
