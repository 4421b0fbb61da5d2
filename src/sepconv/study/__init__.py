"""The trade-off study application: data, training, latency, report, plots and the CPU benchmark suite.

- :mod:`~sepconv.study.config`: :class:`StudyConfig` and the variants compared;
- :mod:`~sepconv.study.data`: the embedded digits, MNIST, CIFAR-10, image folders and npz files;
- :mod:`~sepconv.study.training`, :mod:`~sepconv.study.latency`, :mod:`~sepconv.study.report`,
  :mod:`~sepconv.study.plots`: the phases of :func:`run_study` (:mod:`~sepconv.study.runner`);
- :mod:`~sepconv.study.budget`, :mod:`~sepconv.study.plan`, :mod:`~sepconv.study.progress`: automatic epochs,
  threads and device, the expected duration and the ETA; :mod:`~sepconv.study.folder`: the run folder's lock and
  the checks before a resume;
- :mod:`~sepconv.study.bench`: ``sepconv bench``, the CPU latency suite.

Importing this package does not import matplotlib (the plots import it when they draw).

Example:
    >>> from sepconv.study import StudyConfig, VARIANTS
    >>> "depthwise" in VARIANTS and StudyConfig(epochs=1).epochs == 1
    True
"""

from typing import TYPE_CHECKING

from .. import _lazy

# Names load on first use, so that the command line reads the study's choices without importing torch.
_lazy.install(__name__, {
    "DEFAULT_VARIANTS": ("sepconv.choices", "DEFAULT_STUDY_VARIANTS"),
    "VARIANTS": ("sepconv.choices", "STUDY_VARIANTS"),
    "StudyConfig": ("sepconv.study.config", "StudyConfig"),
    "plan_study": ("sepconv.study.plan", "plan_study"),
    "summarize": ("sepconv.study.report", "summarize"),
    "table_rows": ("sepconv.study.report", "table_rows"),
    "run_study": ("sepconv.study.runner", "run_study"),
})

if TYPE_CHECKING:
    from .config import DEFAULT_VARIANTS, VARIANTS, StudyConfig
    from .plan import plan_study
    from .report import summarize, table_rows
    from .runner import run_study

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "StudyConfig", "plan_study", "run_study", "summarize", "table_rows"]
