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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..cost import count
from ..errors import ArgumentError
from ..layers import SpatiallySeparableConv2d
from . import plots
from .config import _SAME_ON_RESUME, VARIANTS, StudyConfig
from .data import Dataset, load
from .latency import measure_latency
from .report import summarize, write_json, write_report
from .training import Reporter, _barrier, _dist, build_model, converted, evaluate, load_trained, train_run

__all__ = ["run_study"]


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


@dataclass
class _Study:
    """The state one :func:`run_study` call shares between its phases."""

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


def _open_results(config: StudyConfig, out: Path, rank: int, world: int) -> dict:
    """The results dict this study starts from (rank 0 prepares the folder; the others read what it kept)."""
    if rank == 0:
        results = _prepare_folder(config, out)
        out.mkdir(parents=True, exist_ok=True)
    _barrier(world)
    if rank != 0:
        path = out / "results.json"
        results = json.loads(path.read_text()) if config.resume and path.exists() else \
            {"config": config.as_dict(), "runs": {}}
    return results


def _describe(study: _Study) -> None:
    """Record the data and the cost (parameters, MACs) of every variant known before training."""
    data, results = study.data, study.results
    results["data"] = {"spec": study.config.data, "summary": data.summary(), "image_shape": list(data.image_shape),
                       "classes": data.classes, "train": len(data.y_train), "val": len(data.y_val),
                       "test": len(data.y_test)}
    results["world_size"] = study.world
    costs = results.setdefault("costs", {})
    for variant in study.config.variants:
        if variant != "convert":  # its architecture exists only after the conversion: counted then
            cost = count(build_model(variant, data, study.config).eval(), (1, *data.image_shape))
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
        model, teacher, conversion = converted(seed, data, config, out)
        before = evaluate(model, data.x_test, data.y_test)
        run = train_run(variant, seed, data, config, checkpoint, study.rank, study.world, reporter, model=model,
                        teacher=teacher, epochs=config.finetune_epochs)
        run.update(test_acc_before_finetune=before, conversion=conversion)
        cost = count(model.eval(), (1, *data.image_shape))
        study.results["costs"][variant] = {"params": cost.params, "macs": cost.macs}
    else:
        run = train_run(variant, seed, data, config, checkpoint, study.rank, study.world, reporter)
    _barrier(study.world)
    runs = study.results["runs"].setdefault(variant, [])
    runs.append(run)
    runs.sort(key=lambda r: r["seed"])
    return run


def _train_all(study: _Study, todo: list[tuple[str, int]], on_epoch: Callable[[str, int, int], None] | None,
               progress: bool, log_given: bool) -> None:
    """Train every run of ``todo`` under the progress bars, saving the results after each one."""
    config = study.config
    with _progress(progress and study.rank == 0) as bars:
        say = study.say
        if log_given and study.rank == 0 and not bars.disable:  # print above the live bars, not through them
            say = lambda line: bars.console.print(line, markup=False, highlight=False)  # noqa: E731
        reporter = Reporter(bars, say, on_epoch)
        reporter.run_task = bars.add_task("study", total=sum(config.finetune_epochs if v == "convert" else
                                                                 config.epochs for v, _ in todo))
        reporter.batch_task = bars.add_task("epoch", total=1)
        for variant, seed in todo:
            run = _train_one(study, variant, seed, reporter)
            say(f"{variant:16s} seed {seed}: test accuracy {run['test_acc']:.2f}% "
                f"(training {run['train_time_s']:.1f} s)")
            study.results.pop("latency", None)
            study.save()


def _finish(study: _Study, began: float) -> None:
    """Rank 0: time the trained variants (unless already timed), record the wall time, draw the plots."""
    config, results, out, seed = study.config, study.results, study.out, study.seeds[0]
    if set(results.get("latency", {})) != set(config.variants):
        models = {variant: load_trained(variant, seed, study.data, config, out) for variant in config.variants}
        study.say(f"timing inference, {config.latency_reps} interleaved rounds")
        results["latency"] = measure_latency(models, study.data.image_shape, config.latency_reps)
    results["wall_time_s"] = results.get("wall_time_s", 0.0) + time.perf_counter() - began
    study.save()
    if config.plots:
        results["plots"] = plots.write_plots(results, out, _trained_spatial_layer(config, study.data, out, seed))
        study.save()


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
    results = _open_results(config, out, rank, world)
    data = load(config.data, val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    say(data.summary())
    study = _Study(config, out, rank, world, results, data, say)
    _describe(study)
    study.save()
    _train_all(study, _todo(study), on_epoch, progress, log is not None)
    if rank == 0:
        _finish(study, began)
    _barrier(world)
    return results


def _trained_spatial_layer(config: StudyConfig, data: Dataset, out: Path, seed: int) -> tuple[str, nn.Module] | None:
    """The first spatially separable layer of the first spatial variant, with its trained weights."""
    for variant in config.variants:
        if VARIANTS[variant][0] == "spatial":
            model = load_trained(variant, seed, data, config, out)
            for name, module in model.named_modules():
                if isinstance(module, SpatiallySeparableConv2d):
                    return f"{variant} (seed {seed}): {name}", module
    return None
