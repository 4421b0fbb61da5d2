"""Training one run of the study: model building, the distributed-aware loop, checkpoints, distillation.

Runs train on ``config.device`` (the resolved :class:`~sepconv.study.config.StudyConfig`), with bfloat16 or float16
autocast under ``config.amp`` (float16 with a gradient scaler), and are deterministic for a given seed, thread
count and machine: the batches come from a seeded generator, the weights from ``torch.manual_seed(seed)``, and on a
GPU cuDNN is held to its deterministic algorithms while the study runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .._files import atomic_write
from ..convert import convert
from ..errors import DataFormatError, SepConvError
from ..models.small_cnn import small_cnn
from .budget import amp_dtype
from .config import VARIANTS, StudyConfig
from .data import Dataset
from .progress import Reporter


class TrainingDivergedError(SepConvError):
    """The training loss became NaN or infinite (learning rate too high for this data)."""


def _dist(device: str) -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun (nccl for a GPU, gloo for the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """Hold cuDNN to deterministic algorithms on a GPU while the block runs (restored afterwards)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state (``weights_only=True``, on the CPU); a damaged file raises a one-line error naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        first = (str(err).splitlines() or [type(err).__name__])[0]
        reason = "not a weights-only torch checkpoint" if first.startswith("Weights only load failed") else first[:100]
        raise DataFormatError(f"checkpoint {str(path)!r} is damaged ({reason}); delete it to retrain that run, or "
                              f"start over with --overwrite") from err
    if not isinstance(state, dict) or "model" not in state:
        raise DataFormatError(f"checkpoint {str(path)!r} is not a sepconv study checkpoint; delete it to retrain "
                              f"that run, or start over with --overwrite")
    return state


def _load_state(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as err:
        raise DataFormatError(f"checkpoint {str(path)!r} does not fit this network ({str(err).splitlines()[0][:120]}); "
                              f"delete it to retrain that run, or start over with --overwrite") from err


def build_model(variant: str, data: Dataset, config: StudyConfig) -> nn.Module:
    """The untrained :func:`small_cnn` of ``variant`` (``convert``: the standard one) for ``data``."""
    conv, placement, _ = VARIANTS[variant]
    return small_cnn(data.image_shape[0], data.num_classes, "standard" if conv == "convert" else conv, placement,
                     config.widths, config.stem, config.kernel_size)


def load_trained(variant: str, seed: int, data: Dataset, config: StudyConfig, out: Path,
                 device: str = "cpu") -> nn.Module:
    """The trained model of a finished run, from its checkpoint (``weights_only=True``), in eval mode on ``device``.

    For ``convert`` the architecture is rebuilt by converting the trained standard model again (the
    conversion is deterministic), then the fine-tuned weights are loaded.
    """
    model = converted(seed, data, config, out)[0] if variant == "convert" else build_model(variant, data, config)
    path = out / "checkpoints" / f"{variant}-seed{seed}.pt"
    _load_state(model, load_checkpoint(path)["model"], path)
    return model.to(device).eval()


#: unlabelled training images the ``convert`` variant calibrates on (ranks by output error, least-squares refit)
CALIBRATION_IMAGES = 512


def converted(seed: int, data: Dataset, config: StudyConfig, out: Path,
              measure: bool = False) -> tuple[nn.Module, nn.Module, dict]:
    """``(converted model, trained standard model, conversion summary)`` for ``seed``, on the CPU.

    The model is the calibrated conversion (the first :data:`CALIBRATION_IMAGES` training images, unlabelled;
    deterministic, so :func:`load_trained` rebuilds the same architecture). ``measure`` adds the test accuracy of
    the weight-only conversion (closed form, no data, not trained) to the summary.
    """
    teacher = load_trained("standard", seed, data, config, out)
    calibration = data.x_train[:CALIBRATION_IMAGES].cpu()
    model, report = convert(teacher, method="depthwise", budget=config.convert_budget,
                            example_inputs=data.x_val[:64].cpu(), calibration=calibration)
    summary = {"mac_ratio": report.mac_ratio, "output_error": report.output_error,
               "params_after": report.params_after, "macs_after": report.macs_after,
               "ranks": {layer.name: layer.rank for layer in report.layers},
               "calibration_images": len(calibration), "calibration_images_used": report.calibration["images"],
               "calibration_seconds": report.calibration["seconds"]}
    if measure:
        weight_only, _ = convert(teacher, method="depthwise", budget=config.convert_budget,
                                 example_inputs=data.x_val[:64].cpu())
        summary["test_acc_weight_only"] = evaluate(weight_only, data.x_test.cpu(), data.y_test.cpu())
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


def _distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                       temperature: float = 4.0, alpha: float = 0.5) -> torch.Tensor:
    """Hinton's knowledge distillation: ``alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * CE``."""
    soft = F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(teacher_logits / temperature, 1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(logits, y)


def _restore(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler,
             scaler: torch.amp.GradScaler) -> tuple[int, float, list[dict]]:
    """Load an unfinished run's checkpoint into the objects; ``(epochs done, training seconds, history)``."""
    if not checkpoint.exists():
        return 0, 0.0, []
    state = load_checkpoint(checkpoint)
    _load_state(model, state["model"], checkpoint)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        return int(state["epoch"]), float(state["train_time"]), json.loads(state["history"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise DataFormatError(f"checkpoint {str(checkpoint)!r} is damaged ({err!r}); delete it to retrain that "
                              f"run, or start over with --overwrite") from err


def _save(checkpoint: Path, state: dict) -> None:
    """Write the epoch checkpoint atomically (a reader sees the previous epoch or this one, never half a file)."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(checkpoint, lambda p: torch.save(state, p))


class _Step:
    """One optimisation step: loss (plain or distilled) under autocast, backward, AdamW, LR schedule."""

    def __init__(self, net: nn.Module, teacher: nn.Module | None, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                 dtype: torch.dtype | None, device: str) -> None:
        self.net, self.teacher, self.optimizer, self.scheduler, self.scaler = net, teacher, optimizer, scheduler, scaler
        self.dtype, self.device_type = dtype, torch.device(device).type

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            logits = self.net(x)
            if self.teacher is None:
                loss = F.cross_entropy(logits, y)
            else:
                with torch.no_grad():
                    teacher_logits = self.teacher(x)
                loss = _distillation_loss(logits.float(), teacher_logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()


def _train_epoch(step: _Step, data: Dataset, batch_size: int, seed: int, epoch: int, rank: int, world: int,
                 reporter: Reporter) -> float:
    """One pass over this process's share of the training batches; returns the mean training loss."""
    step.net.train()
    loss_sum, seen = torch.zeros((), device=data.x_train.device), 0
    for idx in _batches(len(data.y_train), batch_size, seed, epoch, rank, world):
        idx = idx.to(data.x_train.device)
        y = data.y_train[idx]
        loss_sum += step(data.x_train[idx], y).float() * len(y)
        seen += len(y)
        reporter.advance()
    return float(loss_sum) / max(seen, 1)


def train_run(variant: str, seed: int, data: Dataset, config: StudyConfig, checkpoint: Path, rank: int,
              world: int, reporter: Reporter, *, model: nn.Module | None = None, teacher: nn.Module | None = None,
              epochs: int | None = None) -> dict:
    """Train one ``(variant, seed)`` run on ``config.device``, resuming from ``checkpoint`` if it holds one.

    ``model`` (default: a fresh :func:`build_model`) is trained for ``epochs`` (default ``config.epochs``); with a
    ``teacher`` the loss is :func:`_distillation_loss` against its logits. ``data`` lives on ``config.device``.

    Raises:
        TrainingDivergedError: the training loss became NaN or infinite.
    """
    torch.manual_seed(seed)
    model = (build_model(variant, data, config) if model is None else model).to(config.device)
    epochs = epochs or config.epochs
    dtype = amp_dtype(config.device, config.amp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = len(range(0, len(data.y_train), config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: _lr_factor(i, epochs * steps))
    scaler = torch.amp.GradScaler(torch.device(config.device).type, enabled=dtype == torch.float16)
    start, train_time, history = _restore(checkpoint, model, optimizer, scheduler, scaler)
    reporter.skip(variant, start)
    net = DistributedDataParallel(model) if world > 1 else model
    step = _Step(net, teacher, optimizer, scheduler, scaler, dtype, config.device)
    for epoch in range(start, epochs):
        reporter.start(f"{variant} seed {seed} epoch {epoch + 1}/{epochs}", steps)
        began = time.perf_counter()
        loss = _train_epoch(step, data, config.batch_size, seed, epoch, rank, world, reporter)
        if not math.isfinite(loss):
            raise TrainingDivergedError(f"training of {variant} seed {seed} diverged (loss {loss} in epoch "
                                        f"{epoch + 1}); lower --lr (now {config.lr:g}) or check the data")
        train_time += time.perf_counter() - began
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_acc": evaluate(model, data.x_val, data.y_val)})
        if rank == 0:
            _save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                               "train_time": train_time, "history": json.dumps(history)})
        reporter.epoch_done(variant, seed, epoch + 1, time.perf_counter() - began)
    test_acc = evaluate(model, data.x_test, data.y_test)
    return {"seed": seed, "test_acc": test_acc, "train_time_s": train_time, "history": history}
