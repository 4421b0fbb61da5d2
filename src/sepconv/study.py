"""The trade-off study: the same network with standard or separable convs, trained, timed and compared.

For every variant (:data:`VARIANTS`) and every seed the study trains :func:`sepconv.models.small_cnn` on the
training split, follows the validation accuracy epoch by epoch and measures the test accuracy once at the end
(the test split is never used to choose anything). Per variant it reports parameters and multiply-adds
(:func:`sepconv.count`), the median inference latency at batch 1 and batch 64 (all variants timed in the
same process, interleaved), the training time and the test accuracy (mean ± std over the seeds).

Everything lands in the run folder: ``results.json`` and ``report.md`` (rewritten atomically after every
finished run), ``checkpoints/<variant>-seed<k>.pt`` (written atomically after every epoch, loaded with
``torch.load(weights_only=True)``) and the plots. :func:`run_study` with ``resume=True`` continues an
interrupted study: finished runs are kept, an unfinished one restarts from its last epoch checkpoint.

Under ``torchrun --nproc_per_node N`` each run trains with DistributedDataParallel (gloo on CPU, nccl on GPU):
every global batch is split across the processes, so the result matches a single process up to the
per-process BatchNorm statistics. Only rank 0 writes files and times latency.

Example:
    >>> import tempfile
    >>> config = StudyConfig(out=tempfile.mkdtemp(), variants=("standard", "depthwise"), epochs=1, seeds=1,
    ...                      latency_reps=1, plots=False)
    >>> results = run_study(config)
    >>> [row["variant"] for row in results["summary"]]
    ['standard', 'depthwise']
    >>> results["summary"][0]["macs"] > 5 * results["summary"][1]["macs"]
    True
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .cost import count
from .data import Dataset, load, parse_spec
from .errors import ArgumentError
from .fusion import fuse
from .models.small_cnn import small_cnn

__all__ = ["VARIANTS", "StudyConfig", "run_study", "summarize"]

#: name -> (conv kind, placement, description). ``convert`` starts from the trained ``standard`` run of each seed.
VARIANTS: dict[str, tuple[str, str, str]] = {
    "standard": ("standard", "all", "every conv standard"),
    "spatial": ("spatial", "all", "every stage conv spatially separable (k x 1 then 1 x k)"),
    "spatial-early": ("spatial", "early", "spatially separable in the first half of the stage convs"),
    "spatial-late": ("spatial", "late", "spatially separable in the second half of the stage convs"),
    "depthwise": ("depthwise", "all", "every stage conv depthwise separable (depthwise then 1x1)"),
    "depthwise-early": ("depthwise", "early", "depthwise separable in the first half of the stage convs"),
    "depthwise-late": ("depthwise", "late", "depthwise separable in the second half of the stage convs"),
    "convert": ("convert", "all", "the trained standard net converted by sepconv.convert(method='depthwise', "
                "budget=convert_budget), then fine-tuned with knowledge distillation from the original"),
}
#: what ``sepconv study`` and ``make demo`` run unless told otherwise.
DEFAULT_VARIANTS = ("standard", "spatial", "depthwise", "depthwise-early", "depthwise-late", "convert")

#: config fields that must match for ``resume`` to continue a run folder.
_SAME_ON_RESUME = ("data", "epochs", "batch_size", "lr", "weight_decay", "seed", "widths", "stem", "kernel_size",
                   "val_fraction", "test_fraction", "convert_budget", "finetune_epochs")


@dataclass
class StudyConfig:
    """Everything a study depends on (the ``sepconv study`` options).

    Attributes:
        data: data spec, see :func:`sepconv.data.load`.
        out: run folder.
        variants: names from :data:`VARIANTS`, in table order.
        epochs: training epochs per run.
        batch_size: global batch size (split across processes under torchrun).
        lr, weight_decay: AdamW learning rate (cosine decay to 0) and weight decay.
        seeds: runs per variant, with seeds ``seed, seed + 1, ...``.
        seed: first seed.
        widths, stem, kernel_size: network shape (:func:`sepconv.models.small_cnn`).
        latency_reps: interleaved timing rounds per variant (median reported).
        convert_budget: MAC budget of the ``convert`` variant, relative to the standard network, in (0, 1].
        finetune_epochs: distillation epochs of the ``convert`` variant after the conversion (same learning
            rate and cosine schedule as the training, over these epochs).
        val_fraction, test_fraction: data split (test only for sources without their own test split).
        plots: write the PNG plots.
        threads: torch CPU threads (``None``: torch's default). One by default: on small images each op is
            tiny and intra-op threads only add synchronisation (on this 2-core machine under load, one
            training step of the default network took 21 ms with 1 thread and 606 ms with 2).
        resume: continue the study already in ``out``; overwrite: delete it and start over.
    """

    data: str = "digits"
    out: str | Path = "runs/study"
    variants: Sequence[str] = DEFAULT_VARIANTS
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seeds: int = 3
    seed: int = 0
    widths: Sequence[int] = (32, 64)
    stem: int = 16
    kernel_size: int = 3
    latency_reps: int = 15
    convert_budget: float = 0.2
    finetune_epochs: int = 5
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    plots: bool = True
    resume: bool = False
    overwrite: bool = False
    threads: int | None = 1

    def check(self) -> StudyConfig:
        """Validate every field; raises :class:`~sepconv.errors.ArgumentError` naming the bad one."""
        parse_spec(self.data)
        for name in ("epochs", "batch_size", "seeds", "stem", "kernel_size", "latency_reps", "finetune_epochs"):
            _checks.positive_int(getattr(self, name), name)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ArgumentError(f"seed must be an int >= 0, got {self.seed!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, float | int) or isinstance(value, bool) or not math.isfinite(value) or value < 0 \
                    or (name == "lr" and value == 0):
                raise ArgumentError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, "
                                    f"got {value!r}")
        if isinstance(self.variants, str) or not self.variants:
            raise ArgumentError(f"variants must be a non-empty list of names from {sorted(VARIANTS)}, "
                                f"got {self.variants!r}")
        for name in self.variants:
            if name not in VARIANTS:
                raise ArgumentError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        budget = self.convert_budget
        if not isinstance(budget, float | int) or isinstance(budget, bool) or not 0 < budget <= 1:
            raise ArgumentError(f"convert_budget must be a number in (0, 1] (MACs relative to the standard "
                                f"network), got {budget!r}")
        if "convert" in self.variants and "standard" not in self.variants:
            raise ArgumentError("variant 'convert' starts from the trained 'standard' network: add 'standard' "
                                "to the variants")
        if len(set(self.variants)) != len(self.variants):
            raise ArgumentError(f"variants must not repeat, got {list(self.variants)}")
        if self.kernel_size % 2 == 0:
            raise ArgumentError(f"kernel_size must be odd (for 'same' padding), got {self.kernel_size}")
        if self.resume and self.overwrite:
            raise ArgumentError("resume and overwrite exclude each other: resume continues the run folder, "
                                "overwrite deletes it")
        if self.threads is not None:
            _checks.positive_int(self.threads, "threads")
        self.variants = tuple(self.variants)
        self.widths = tuple(_checks.positive_int(w, "widths") for w in self.widths)
        return self

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"], d["variants"], d["widths"] = str(self.out), list(self.variants), list(self.widths)
        return d


# --- small helpers -------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_json(path: Path, obj: object) -> None:
    """Atomically write ``obj`` as indented JSON."""
    _atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1) + "\n"))


def _dist() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

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
    from .convert import convert

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


# --- one training run ----------------------------------------------------------------------------------------


@dataclass
class _Reporter:
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


def train_run(variant: str, seed: int, data: Dataset, config: StudyConfig, checkpoint: Path, rank: int,
              world: int, reporter: _Reporter, *, model: nn.Module | None = None, teacher: nn.Module | None = None,
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
    steps_per_epoch = sum(1 for _ in range(0, len(data.y_train), config.batch_size))
    total = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total))
    history: list[dict] = []
    start, train_time = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, train_time, history = int(state["epoch"]), float(state["train_time"]), json.loads(state["history"])
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    for epoch in range(start, epochs):
        reporter.start(f"{variant} seed {seed} epoch {epoch + 1}/{epochs}", steps_per_epoch)
        net.train()
        began = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for idx in _batches(len(data.y_train), config.batch_size, seed, epoch, rank, world):
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
        train_time += time.perf_counter() - began
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
                        "val_acc": evaluate(model, data.x_val, data.y_val)})
        if rank == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "train_time": train_time,
                     "history": json.dumps(history)}
            _atomic_write(checkpoint, lambda p, s=state: torch.save(s, p))
        reporter.epoch_done()
        if reporter.on_epoch is not None:
            reporter.on_epoch(variant, seed, epoch + 1)
    test_acc = evaluate(model, data.x_test, data.y_test)
    return {"seed": seed, "test_acc": test_acc, "train_time_s": train_time, "history": history}


# --- latency ---------------------------------------------------------------------------------------------------


def measure_latency(models: dict[str, nn.Module], image_shape: Sequence[int], reps: int,
                    batches: Sequence[int] = (1, 64)) -> dict[str, dict[str, float]]:
    """Median forward time in milliseconds per model and batch size, all timed interleaved in one process.

    Every model is timed in its inference form, :func:`sepconv.fuse` (BatchNorm folded, channels_last
    weights), so standard and separable variants get the same treatment.

    Each round times every model once at every batch size (a few calls each, averaged), so slow drifts of the
    machine (other processes, clock) hit all variants alike; the median over ``reps`` rounds is reported.

    Example:
        >>> lat = measure_latency({"a": nn.Conv2d(1, 2, 3)}, (1, 8, 8), reps=2)
        >>> sorted(lat["a"]), lat["a"]["batch1_ms"] > 0
        (['batch1_ms', 'batch64_ms'], True)
    """
    models = {name: fuse(model) for name, model in models.items()}
    inputs = {b: torch.randn(b, *image_shape) for b in batches}
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in models}
    for model in models.values():
        model.eval()
    with torch.inference_mode():
        for model in models.values():  # warm-up
            for b in batches:
                model(inputs[b])
        for _ in range(reps):
            for name, model in models.items():
                for b in batches:
                    calls = max(1, 16 // b)
                    began = time.perf_counter()
                    for _ in range(calls):
                        model(inputs[b])
                    times[name][b].append((time.perf_counter() - began) * 1000 / calls)
    return {name: {f"batch{b}_ms": statistics.median(t[b]) for b in batches} for name, t in times.items()}


# --- the study -------------------------------------------------------------------------------------------------


def _prepare_folder(config: StudyConfig, out: Path) -> dict:
    """Check / clear the run folder; return the previous results when resuming (else a fresh dict)."""
    results_path = out / "results.json"
    if results_path.exists() and not (config.resume or config.overwrite):
        raise ArgumentError(f"run folder {str(out)!r} already holds a study; pass --resume to continue it or "
                            f"--overwrite to start over")
    if config.overwrite:
        for name in ("results.json", "report.md", "accuracy_vs_macs.png", "training_curves.png",
                     "separable_filters.png"):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if config.resume and results_path.exists():
        try:
            previous = json.loads(results_path.read_text())
            old = previous["config"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ArgumentError(f"{results_path}: cannot resume, not a sepconv study results file ({err})") from err
        new = config.as_dict()
        for key in _SAME_ON_RESUME:
            if old.get(key) != new[key]:
                raise ArgumentError(f"cannot resume {str(out)!r}: it was run with {key}={old.get(key)!r}, got "
                                    f"{key}={new[key]!r}; use the same options or another --out")
        previous["config"] = new
        return previous
    return {"config": config.as_dict(), "runs": {}}


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
        if all("test_acc_before_finetune" in r for r in runs):
            rows[-1]["acc_before_finetune_mean"], rows[-1]["acc_before_finetune_std"] = _mean_std(
                [r["test_acc_before_finetune"] for r in runs])
    return rows


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
                    disable=not (enabled and console.is_terminal))


def run_study(config: StudyConfig, *, log: Callable[[str], None] | None = None,
              on_epoch: Callable[[str, int, int], None] | None = None, progress: bool = True) -> dict:
    """Run (or resume) the study described by ``config``; returns the results dict written to results.json.

    Args:
        config: a :class:`StudyConfig`.
        log: called with one line per finished run and step (rank 0 only); default silent.
        on_epoch: called as ``on_epoch(variant, seed, epoch)`` after each epoch checkpoint is written.
        progress: show rich progress bars (only when stderr is a terminal).

    Returns:
        ``{"config", "data", "costs", "runs", "latency", "summary", "wall_time_s"}``.
    """
    config.check()
    out = Path(config.out)
    began = time.perf_counter()
    rank, world = _dist()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    say = (log or (lambda line: None)) if rank == 0 else (lambda line: None)
    if rank == 0:
        results = _prepare_folder(config, out)
        out.mkdir(parents=True, exist_ok=True)
    _barrier(world)
    if rank != 0:
        results = json.loads((out / "results.json").read_text()) if config.resume and \
            (out / "results.json").exists() else {"config": config.as_dict(), "runs": {}}
    data = load(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    say(data.summary())
    results["data"] = {"spec": config.data, "summary": data.summary(), "image_shape": list(data.image_shape),
                       "classes": data.classes, "train": len(data.y_train), "val": len(data.y_val),
                       "test": len(data.y_test)}
    results["world_size"] = world
    costs = results.setdefault("costs", {})
    for variant in config.variants:
        if variant != "convert":  # its architecture exists only after the conversion: counted then
            cost = count(build_model(variant, data, config).eval(), (1, *data.image_shape))
            costs[variant] = {"params": cost.params, "macs": cost.macs}
    seeds = [config.seed + i for i in range(config.seeds)]

    def save() -> None:
        if rank == 0:
            results["summary"] = summarize(results)
            write_json(out / "results.json", results)
            write_report(results, out)

    save()
    todo = [(v, s) for v in config.variants for s in seeds
            if not any(r["seed"] == s for r in results["runs"].get(v, []))]
    todo.sort(key=lambda run: run[0] == "convert")  # after every standard run it starts from
    if len(todo) < len(config.variants) * len(seeds):
        say(f"resuming: {len(config.variants) * len(seeds) - len(todo)} finished runs kept, {len(todo)} to do")
    with _progress(progress and rank == 0) as bars:
        if log is not None and rank == 0 and not bars.disable:  # print above the live bars, not through them
            say = lambda line: bars.console.print(line, markup=False, highlight=False)  # noqa: E731
        reporter = _Reporter(bars, say, on_epoch)
        reporter.run_task = bars.add_task("study", total=sum(config.finetune_epochs if v == "convert" else
                                                                 config.epochs for v, _ in todo))
        reporter.batch_task = bars.add_task("epoch", total=1)
        for variant, seed in todo:
            checkpoint = out / "checkpoints" / f"{variant}-seed{seed}.pt"
            if variant == "convert":
                model, teacher, conversion = converted(seed, data, config, out)
                before = evaluate(model, data.x_test, data.y_test)
                run = train_run(variant, seed, data, config, checkpoint, rank, world, reporter, model=model,
                                teacher=teacher, epochs=config.finetune_epochs)
                run.update(test_acc_before_finetune=before, conversion=conversion)
                cost = count(model.eval(), (1, *data.image_shape))
                costs[variant] = {"params": cost.params, "macs": cost.macs}
            else:
                run = train_run(variant, seed, data, config, checkpoint, rank, world, reporter)
            _barrier(world)
            results["runs"].setdefault(variant, []).append(run)
            results["runs"][variant].sort(key=lambda r: r["seed"])
            say(f"{variant:16s} seed {seed}: test accuracy {run['test_acc']:.2f}% "
                f"(training {run['train_time_s']:.1f} s)")
            results.pop("latency", None)
            save()
    if rank == 0:
        if set(results.get("latency", {})) != set(config.variants):
            models = {variant: load_trained(variant, seeds[0], data, config, out) for variant in config.variants}
            say(f"timing inference, {config.latency_reps} interleaved rounds")
            results["latency"] = measure_latency(models, data.image_shape, config.latency_reps)
        results["wall_time_s"] = results.get("wall_time_s", 0.0) + time.perf_counter() - began
        save()
        if config.plots:
            from . import viz

            results["plots"] = viz.write_plots(results, out, _trained_spatial_layer(config, data, out, seeds[0]))
            save()
    _barrier(world)
    return results


def _trained_spatial_layer(config: StudyConfig, data: Dataset, out: Path, seed: int) -> tuple[str, nn.Module] | None:
    """The first spatially separable layer of the first spatial variant, with its trained weights."""
    from .layers import SpatiallySeparableConv2d

    for variant in config.variants:
        if VARIANTS[variant][0] == "spatial":
            model = load_trained(variant, seed, data, config, out)
            for name, module in model.named_modules():
                if isinstance(module, SpatiallySeparableConv2d):
                    return f"{variant} (seed {seed}): {name}", module
    return None


# --- the report ------------------------------------------------------------------------------------------------


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
            name += f" ({r['acc_before_finetune_mean']:.1f}% before FT)"
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
        lines.append(f"**convert** (no training from scratch): right after `sepconv.convert` the standard network "
                     f"scores {conv['acc_before_finetune_mean']:.2f} ± {conv['acc_before_finetune_std']:.2f}%, "
                     f"after the distillation fine-tune {conv['acc_mean']:.2f} ± {conv['acc_std']:.2f}%.")
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
    _atomic_write(path, lambda p: p.write_text("\n".join(lines) + "\n"))
    return path

