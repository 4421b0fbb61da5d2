"""The run folder of a study: a lock against a second study, overwrite, and the checks before a resume.

A study holds an exclusive lock on ``<out>/.lock`` (``fcntl.flock``, released by the OS when the process ends, so
a killed study leaves no stale lock) while it runs: a second study on the same folder stops with one line instead
of interleaving its writes. ``--resume`` continues only a folder whose ``results.json`` is a well-formed study of
the same options and the same data (a SHA-256 of the loaded images and labels is recorded).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with lock(out):
    ...     with lock(out):
    ...         pass
    Traceback (most recent call last):
    ...
    sepconv.errors.ArgumentError: run folder ... is in use by another sepconv study (pid ...); wait for it ...
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import ArgumentError, DataFormatError
from .config import _SAME_ON_RESUME, StudyConfig

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock (documented)
    fcntl = None  # type: ignore[assignment]

__all__ = ["OUTPUTS", "check_out", "lock", "prepare", "resume_results"]

#: the files a study writes into its folder (deleted by ``overwrite``, with ``checkpoints/``).
OUTPUTS = ("results.json", "report.md", "accuracy_vs_macs.png", "training_curves.png", "separable_filters.png")


def check_out(out: Path) -> None:
    """Raise a one-line :class:`ArgumentError` if ``out`` is a file or lies under one."""
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == out else f"lies under {str(path)!r}, which is a file"
            raise ArgumentError(f"out {str(out)!r} {where}; the study writes a folder: choose another --out")


@contextlib.contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold the exclusive lock of the run folder ``out`` (created if needed) while the block runs."""
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(out / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise ArgumentError(f"run folder {str(out)!r} is in use by another sepconv study (pid {owner}); wait for "
                                f"it to finish or choose another --out") from err
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(config: StudyConfig, out: Path) -> None:
    """Refuse a folder that holds a study unless resuming or overwriting; clear it for ``overwrite``."""
    results_path = out / "results.json"
    if results_path.exists() and not (config.resume or config.overwrite):
        raise ArgumentError(f"run folder {str(out)!r} already holds a study; pass --resume to continue it or "
                            f"--overwrite to start over")
    if config.overwrite:
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def resume_results(config: StudyConfig, out: Path, fingerprint: str) -> dict:
    """The previous results of ``out`` when resuming a well-formed, compatible study; else a fresh dict.

    ``config`` is the resolved configuration (automatic choices made), compared field by field with the one
    recorded; ``fingerprint`` is the SHA-256 of the loaded data, compared with the recorded one.
    """
    path = out / "results.json"
    fresh = {"config": config.as_dict(), "runs": {}}
    if not (config.resume and path.exists()):
        return fresh
    previous = _read(path)
    old, new = previous["config"], config.as_dict()
    for key in _SAME_ON_RESUME:
        if old.get(key) != new[key]:
            raise ArgumentError(f"cannot resume {str(out)!r}: it was run with {key}={old.get(key)!r}, got "
                                f"{key}={new[key]!r}; use the same options or another --out")
    recorded = previous.get("data", {}).get("sha256")
    if recorded is not None and recorded != fingerprint:
        raise ArgumentError(f"cannot resume {str(out)!r}: the data {config.data!r} changed since the study started "
                            f"(content SHA-256 {fingerprint[:12]}..., recorded {str(recorded)[:12]}...); use the "
                            f"same data, another --out, or --overwrite")
    previous["config"] = new
    for derived in ("summary", "plots"):
        previous.pop(derived, None)
    return previous


def _read(path: Path) -> dict:
    """``results.json`` parsed and checked for the parts a resume keeps (runs, costs, latency)."""
    try:
        previous = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: cannot resume, not a sepconv study results file ({err})") from err
    if not isinstance(previous, dict) or not isinstance(previous.get("config"), dict) or \
            not isinstance(previous.get("runs"), dict):
        raise DataFormatError(f"{path}: cannot resume, not a sepconv study results file (no 'config' and 'runs')")
    for variant, runs in previous["runs"].items():
        if not isinstance(runs, list) or not all(_run_ok(run) for run in runs):
            raise DataFormatError(f"{path}: cannot resume, the runs of {variant!r} are damaged or hand-edited (each "
                                  f"needs an int 'seed', numbers 'test_acc' and 'train_time_s', a list 'history'); "
                                  f"restore the file or start over with --overwrite")
    for table in ("costs", "latency"):
        entries = previous.get(table, {})
        if not isinstance(entries, dict) or not all(
                isinstance(row, dict) and all(_is_number(v) for v in row.values()) for row in entries.values()):
            raise DataFormatError(f"{path}: cannot resume, {table!r} is damaged or hand-edited (numbers per "
                                  f"variant); restore the file or start over with --overwrite")
    return previous


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _run_ok(run: object) -> bool:
    return (isinstance(run, dict) and isinstance(run.get("seed"), int) and _is_number(run.get("test_acc"))
            and _is_number(run.get("train_time_s")) and isinstance(run.get("history"), list)
            and all(isinstance(epoch, dict) for epoch in run["history"]))
