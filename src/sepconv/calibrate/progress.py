"""The progress bar of a calibrated conversion: one bar over every pass of the data, labelled by layer.

Shown on stderr when it is a terminal (``enabled=None``), always (``True``) or never (``False``); quiet in
tests and pipes by default.

Example:
    >>> with CalibrationProgress(False, passes=2, batches=3) as bar:
    ...     bar.start("measuring")
    ...     bar.advance()
"""

from __future__ import annotations

from types import TracebackType

__all__ = ["CalibrationProgress"]


class CalibrationProgress:
    """A rich progress bar of ``passes * batches`` steps (or nothing when disabled)."""

    def __init__(self, enabled: bool | None, passes: int, batches: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        show = console.is_terminal if enabled is None else bool(enabled)
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True, disable=not show)
        self._task = self._bar.add_task("calibration", total=passes * batches)
        self._batches = batches

    def set_passes(self, passes: int) -> None:
        """Set the number of passes over the data, once it is known."""
        self._bar.update(self._task, total=passes * self._batches)

    def start(self, description: str) -> None:
        """Label the pass that begins."""
        self._bar.update(self._task, description=description)

    def advance(self) -> None:
        """One batch done."""
        self._bar.advance(self._task)

    def __enter__(self) -> CalibrationProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._bar.__exit__(kind, error, traceback)
