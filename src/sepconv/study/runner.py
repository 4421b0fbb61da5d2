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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..cost import count
from ..layers import SpatiallySeparableConv2d
from . import plots
from .budget import format_seconds, resolve_device, threads
from .config import VARIANTS, StudyConfig
from .data import Dataset, load
from .folder import lock, prepare, resume_results
from .latency import measure_latency
from .plan import describe, estimate, resolve
from .progress import Reporter, reporting
from .report import summarize, write_json, write_report
from .training import _barrier, _dist, build_model, converted, deterministic, evaluate, load_trained, train_run

__all__ = ["run_study"]


@dataclass
class _Study:
    """The state one :func:`run_study` call shares between its phases (``config`` resolved, ``data`` on its device)."""

    config: StudyConfig
    out: Path
    rank: int
    world: int
    results: dict
    data: Dataset
    say: Callable[[str], None]

    @property
    def seeds(self) -> list[int]:
        return [self.config.seed + i for i in range(self.config.seeds)]

    def save(self) -> None:
        """Rewrite results.json and report.md (rank 0 only), atomically."""
        if self.rank == 0:
            self.results["summary"] = summarize(self.results)
            write_json(self.out / "results.json", self.results)
            write_report(self.results, self.out)


@contextlib.contextmanager
def _owned(out: Path, rank: int) -> Iterator[None]:
    """Rank 0 holds the run folder's lock; the other processes only write nothing."""
    with lock(out) if rank == 0 else contextlib.nullcontext():
        yield


def _open(config: StudyConfig, out: Path, rank: int, world: int, say: Callable[[str], None]) -> _Study:
    """Prepare the folder, load the data, make the automatic choices and read what a resume keeps."""
    if rank == 0:
        prepare(config, out)
    _barrier(world)
    data = load(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    say(data.summary())
    resolved = resolve(config, data)
    fingerprint = data.fingerprint()
    results = resume_results(resolved, out, fingerprint)
    results["automatic"] = config.automatic()
    results["data"] = {"spec": config.data, "summary": data.summary(), "image_shape": list(data.image_shape),
                       "classes": data.classes, "train": len(data.y_train), "val": len(data.y_val),
                       "test": len(data.y_test), "sha256": fingerprint}
    results["world_size"] = world
    return _Study(resolved, out, rank, world, results, data.to(resolved.device), say)


def _describe(study: _Study) -> None:
    """Record the cost (parameters, MACs) of every variant known before training."""
    costs = study.results.setdefault("costs", {})
    for variant in study.config.variants:
        if variant != "convert":  # its architecture exists only after the conversion: counted then
            cost = count(build_model(variant, study.data, study.config).eval(), (1, *study.data.image_shape))
            costs[variant] = {"params": cost.params, "macs": cost.macs}


def _todo(study: _Study) -> list[tuple[str, int]]:
    """The ``(variant, seed)`` runs not finished yet, ``convert`` after every standard run it starts from."""
    runs = study.results["runs"]
    todo = [(v, s) for v in study.config.variants for s in study.seeds
            if not any(r["seed"] == s for r in runs.get(v, []))]
    todo.sort(key=lambda run: run[0] == "convert")
    done = len(study.config.variants) * len(study.seeds) - len(todo)
    if done:
        study.say(f"resuming: {done} finished runs kept, {len(todo)} to do")
    return todo


def _train_one(study: _Study, variant: str, seed: int, reporter: Reporter) -> dict:
    """Train (or fine-tune, for ``convert``) one run and record it."""
    config, data, out = study.config, study.data, study.out
    checkpoint = out / "checkpoints" / f"{variant}-seed{seed}.pt"
    if variant == "convert":
        model, teacher, conversion = converted(seed, data, config, out, measure=True)
        cost = count(model.eval(), (1, *data.image_shape))
        model, teacher = model.to(config.device), teacher.to(config.device)
        before = evaluate(model, data.x_test, data.y_test)  # calibrated, not trained
        run = train_run(variant, seed, data, config, checkpoint, study.rank, study.world, reporter, model=model,
                        teacher=teacher, epochs=config.finetune_epochs)
        run.update(test_acc_before_finetune=conversion["test_acc_weight_only"], test_acc_calibrated=before,
                   conversion=conversion)
        study.results["costs"][variant] = {"params": cost.params, "macs": cost.macs}
    else:
        run = train_run(variant, seed, data, config, checkpoint, study.rank, study.world, reporter)
    _barrier(study.world)
    runs = study.results["runs"].setdefault(variant, [])
    runs.append(run)
    runs.sort(key=lambda r: r["seed"])
    return run


def _train_all(study: _Study, todo: list[tuple[str, int]], on_epoch: Callable[[str, int, int], None] | None,
               progress: bool, log: Callable[[str], None] | None) -> None:
    """Train every run of ``todo`` (with the ETA of the whole study), saving the results after each one."""
    eta = estimate(study.config, study.data, todo)
    if todo:
        study.say(describe(study.config, study.results["automatic"], study.data, len(todo), eta.seconds_left()))
    with reporting(progress and study.rank == 0, log if study.rank == 0 else None, on_epoch, eta) as reporter:
        for variant, seed in todo:
            run = _train_one(study, variant, seed, reporter)
            left = f"; {reporter.eta_text()}" if eta.remaining else ""
            reporter.log(f"{variant:16s} seed {seed}: test accuracy {run['test_acc']:.2f}% "
                         f"(training {run['train_time_s']:.1f} s){left}")
            study.results.pop("latency", None)
            study.save()


def _finish(study: _Study, began: float) -> None:
    """Rank 0: time the trained variants (unless already timed), record the wall time, draw the plots."""
    config, results, out, seed = study.config, study.results, study.out, study.seeds[0]
    if set(results.get("latency", {})) != set(config.variants):
        models = {v: load_trained(v, seed, study.data, config, out, config.device) for v in config.variants}
        study.say(f"timing inference, {config.latency_reps} interleaved rounds on {config.device}")
        results["latency"] = measure_latency(models, study.data.image_shape, config.latency_reps)
    results["wall_time_s"] = results.get("wall_time_s", 0.0) + time.perf_counter() - began
    study.save()
    if config.plots:
        results["plots"] = plots.write_plots(results, out, _trained_spatial_layer(study))
        study.save()
    study.say(f"study done in {format_seconds(results['wall_time_s'])} (wall time, all sessions)")


def run_study(config: StudyConfig, *, log: Callable[[str], None] | None = None,
              on_epoch: Callable[[str, int, int], None] | None = None, progress: bool = True) -> dict:
    """Run (or resume) the study described by ``config``; returns the results dict written to results.json.

    Args:
        config: a :class:`StudyConfig`.
        log: called with one line per finished run and step (rank 0 only); default silent.
        on_epoch: called as ``on_epoch(variant, seed, epoch)`` after each epoch checkpoint is written.
        progress: show rich progress bars (only when stderr is a terminal).

    Returns:
        ``{"config", "data", "costs", "runs", "latency", "summary", "wall_time_s", ...}``; ``config`` holds the
        automatic choices made (``automatic`` lists which fields were chosen).
    """
    config.check()
    out = Path(config.out)
    began = time.perf_counter()
    rank, world = _dist(resolve_device(config.device))
    say = log if log is not None and rank == 0 else (lambda line: None)
    with _owned(out, rank):
        study = _open(config, out, rank, world, say)
        with threads(study.config.threads), deterministic(study.config.device):  # type: ignore[arg-type]
            _describe(study)
            study.save()
            _train_all(study, _todo(study), on_epoch, progress, log)
            if rank == 0:
                _finish(study, began)
        _barrier(world)
    return study.results


def _trained_spatial_layer(study: _Study) -> tuple[str, nn.Module] | None:
    """The first spatially separable layer of the first spatial variant, with its trained weights."""
    seed = study.seeds[0]
    for variant in study.config.variants:
        if VARIANTS[variant][0] == "spatial":
            model = load_trained(variant, seed, study.data, study.config, study.out)
            for name, module in model.named_modules():
                if isinstance(module, SpatiallySeparableConv2d):
                    return f"{variant} (seed {seed}): {name}", module
    return None
