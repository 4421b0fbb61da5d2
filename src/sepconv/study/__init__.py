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

from .config import DEFAULT_VARIANTS, VARIANTS, StudyConfig
from .plan import plan_study
from .report import summarize, table_rows
from .runner import run_study

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "StudyConfig", "plan_study", "run_study", "summarize", "table_rows"]
