"""Progress of a study: rich bars on a terminal, log lines, and the time left for the whole study.

:class:`Reporter` is what the training loop talks to: it advances the bars, records every finished epoch in the
study's :class:`~sepconv.study.budget.Eta` and calls the ``on_epoch`` hook of :func:`sepconv.study.run_study`.

Example:
    >>> from sepconv.study.budget import Eta
    >>> lines = []
    >>> with reporting(False, lines.append, None, Eta({"a": 10.0}, [("a", 2)])) as reporter:
    ...     reporter.epoch_done("a", 0, 1, 12.0)
    ...     reporter.eta_text()
    'about 12 s left'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .budget import Eta, format_seconds

__all__ = ["Reporter", "reporting"]


class Reporter:
    """Progress bars (when given), log lines and the ETA of one study (rank 0 only).

    Args:
        log: prints one line (above the live bars when there are some).
        on_epoch: called as ``on_epoch(variant, seed, epoch)`` after each epoch checkpoint is written.
        eta: the study's time estimate, updated after every epoch.
        bars: a started rich ``Progress``, or ``None`` for no bars.
    """

    def __init__(self, log: Callable[[str], None], on_epoch: Callable[[str, int, int], None] | None, eta: Eta,
                 bars: Progress | None = None) -> None:
        self.log, self.on_epoch, self.eta, self.bars = log, on_epoch, eta, bars
        if bars is not None:
            total = sum(epochs for _, epochs in eta.remaining)
            self._study: TaskID = bars.add_task("study", total=total, eta=self.eta_text())
            self._epoch: TaskID = bars.add_task("epoch", total=1, eta="")

    def eta_text(self) -> str:
        """``'about 3 min 20 s left'``."""
        return f"about {format_seconds(self.eta.seconds_left())} left"

    def start(self, description: str, total: int) -> None:
        """A new epoch of ``total`` batches begins."""
        if self.bars is not None:
            self.bars.reset(self._epoch, total=total, description=description)

    def advance(self) -> None:
        """One batch done."""
        if self.bars is not None:
            self.bars.advance(self._epoch)

    def skip(self, variant: str, epochs: int) -> None:
        """A resumed run of ``variant`` starts after ``epochs`` epochs already done."""
        self.eta.skip(variant, epochs)
        if self.bars is not None:
            self.bars.update(self._study, advance=epochs, eta=self.eta_text())

    def epoch_done(self, variant: str, seed: int, epoch: int, seconds: float) -> None:
        """Epoch ``epoch`` of ``(variant, seed)`` took ``seconds`` (wall time) and its checkpoint is written."""
        self.eta.epoch_done(variant, seconds)
        if self.bars is not None:
            self.bars.update(self._study, advance=1, eta=self.eta_text())
        if self.on_epoch is not None:
            self.on_epoch(variant, seed, epoch)


@contextlib.contextmanager
def reporting(bars: bool, log: Callable[[str], None] | None, on_epoch: Callable[[str, int, int], None] | None,
              eta: Eta) -> Iterator[Reporter]:
    """A :class:`Reporter`, with live bars on stderr when ``bars`` and stderr is a terminal (``log=None``: silent)."""
    console = Console(stderr=True)
    if not (bars and console.is_terminal):
        yield Reporter(log or _silent, on_epoch, eta)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[eta]}"), console=console, transient=True) as progress:
        def above(line: str) -> None:  # printed above the live bars, not through them
            progress.console.print(line, markup=False, highlight=False)

        yield Reporter(_silent if log is None else above, on_epoch, eta, progress)


def _silent(line: str) -> None:
    """A log that prints nothing."""
