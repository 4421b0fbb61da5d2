"""Training one run of the study: model building, the distributed-aware loop, checkpoints, distillation."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .._files import atomic_write
from ..convert import convert
from ..models.small_cnn import small_cnn
from .config import VARIANTS, StudyConfig
from .data import Dataset


def _dist() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def build_model(variant: str, data: Dataset, config: StudyConfig) -> nn.Module:
    """The untrained :func:`small_cnn` of ``variant`` (``convert``: the standard one) for ``data``."""
    conv, placement, _ = VARIANTS[variant]
    return small_cnn(data.image_shape[0], data.num_classes, "standard" if conv == "convert" else conv, placement,
                     config.widths, config.stem, config.kernel_size)


def load_trained(variant: str, seed: int, data: Dataset, config: StudyConfig, out: Path) -> nn.Module:
    """The trained model of a finished run, from its checkpoint (``weights_only=True``), in eval mode.

    For ``convert`` the architecture is rebuilt by converting the trained standard model again (the
    conversion is deterministic), then the fine-tuned weights are loaded.
    """
    model = converted(seed, data, config, out)[0] if variant == "convert" else build_model(variant, data, config)
    state = torch.load(out / "checkpoints" / f"{variant}-seed{seed}.pt", weights_only=True)
    model.load_state_dict(state["model"])
    return model.eval()


def converted(seed: int, data: Dataset, config: StudyConfig, out: Path) -> tuple[nn.Module, nn.Module, dict]:
    """``(converted model, trained standard model, conversion summary)`` for ``seed``."""
    teacher = load_trained("standard", seed, data, config, out)
    model, report = convert(teacher, method="depthwise", budget=config.convert_budget,
                            example_inputs=data.x_val[:64])
    summary = {"mac_ratio": report.mac_ratio, "output_error": report.output_error,
               "params_after": report.params_after, "macs_after": report.macs_after,
               "ranks": {layer.name: layer.rank for layer in report.layers}}
    return model, teacher, summary


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Accuracy in percent of ``model`` on ``(x, y)`` (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    model.train(was_training)
    return 100.0 * correct / len(x)


def _lr_factor(step: int, total: int) -> float:
    """Cosine decay from 1 to 0 over ``total`` steps."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def _batches(n: int, batch: int, seed: int, epoch: int, rank: int, world: int) -> Iterator[torch.Tensor]:
    """Global shuffled batches (the same on every process), each split across the processes."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)
    for i in range(0, n, batch):
        chunk = order[i:i + batch]
        if len(chunk) >= world:
            yield chunk[rank::world]


@dataclass
class Reporter:
    """Progress display and log lines (rank 0 only)."""

    progress: object | None = None
    log: Callable[[str], None] = lambda line: None
    on_epoch: Callable[[str, int, int], None] | None = None
    run_task: object = None
    batch_task: object = None

    def start(self, description: str, total: int) -> None:
        if self.progress is not None:
            self.progress.reset(self.batch_task, total=total, description=description)  # type: ignore[attr-defined]

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.batch_task)  # type: ignore[attr-defined]

    def epoch_done(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.run_task)  # type: ignore[attr-defined]


def _distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                       temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """Hinton's knowledge distillation: ``alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE``."""
    soft = F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(teacher_logits / temperature, 1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(logits, y)


def _restore(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, float, list[dict]]:
    """Load an unfinished run's checkpoint into the objects; ``(epochs done, training seconds, history)``."""
    if not checkpoint.exists():
        return 0, 0.0, []
    state = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"]), float(state["train_time"]), json.loads(state["history"])


def _save(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, epoch: int, train_time: float, history: list[dict]) -> None:
    """Write the epoch checkpoint atomically (a reader sees the previous epoch or this one, never half a file)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "epoch": epoch, "train_time": train_time, "history": json.dumps(history)}
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(checkpoint, lambda p: torch.save(state, p))


def _train_epoch(net: nn.Module, teacher: nn.Module | None, data: Dataset, batch_size: int, seed: int, epoch: int,
                 rank: int, world: int, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, reporter: Reporter) -> float:
    """One pass over this process's share of the training batches; returns the mean training loss."""
    net.train()
    loss_sum, seen = 0.0, 0
    for idx in _batches(len(data.y_train), batch_size, seed, epoch, rank, world):
        x, y = data.x_train[idx], data.y_train[idx]
        if teacher is None:
            loss = F.cross_entropy(net(x), y)
        else:
            with torch.no_grad():
                teacher_logits = teacher(x)
            loss = _distillation_loss(net(x), teacher_logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += float(loss.detach()) * len(y)
        seen += len(y)
        reporter.advance()
    return loss_sum / max(seen, 1)


def train_run(variant: str, seed: int, data: Dataset, config: StudyConfig, checkpoint: Path, rank: int,
              world: int, reporter: Reporter, *, model: nn.Module | None = None, teacher: nn.Module | None = None,
              epochs: int | None = None, lr: float | None = None) -> dict:
    """Train one ``(variant, seed)`` run, resuming from ``checkpoint`` if it holds an unfinished one.

    ``model`` (default: a fresh :func:`build_model`) is trained for ``epochs`` (default ``config.epochs``) at
    learning rate ``lr``; with a ``teacher`` the loss is :func:`_distillation_loss` against its logits.
    """
    torch.manual_seed(seed)
    model = build_model(variant, data, config) if model is None else model
    epochs = config.epochs if epochs is None else epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr if lr is None else lr,
                                  weight_decay=config.weight_decay)
    total = epochs * len(range(0, len(data.y_train), config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total))
    start, train_time, history = _restore(checkpoint, model, optimizer, scheduler)
    net: nn.Module = DistributedDataParallel(model) if world > 1 else model
    for epoch in range(start, epochs):
        reporter.start(f"{variant} seed {seed} epoch {epoch + 1}/{epochs}", total // epochs)
        began = time.perf_counter()
        loss = _train_epoch(net, teacher, data, config.batch_size, seed, epoch, rank, world, optimizer, scheduler,
                            reporter)
        train_time += time.perf_counter() - began
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_acc": evaluate(model, data.x_val, data.y_val)})
        if rank == 0:
            _save(checkpoint, model, optimizer, scheduler, epoch + 1, train_time, history)
        reporter.epoch_done()
        if reporter.on_epoch is not None:
            reporter.on_epoch(variant, seed, epoch + 1)
    test_acc = evaluate(model, data.x_test, data.y_test)
    return {"seed": seed, "test_acc": test_acc, "train_time_s": train_time, "history": history}
