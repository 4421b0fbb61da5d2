"""Calibrated conversion: data-aware rank allocation and least-squares refit for :func:`sepconv.convert`.

- :mod:`~sepconv.calibrate.batches`: the calibration data (tensor, tuple, DataLoader), checked once;
- :mod:`~sepconv.calibrate.capture`: forward passes that capture a layer's input or output and stop there;
- :mod:`~sepconv.calibrate.measure`: the measuring pass (patch statistics of every candidate conv's input);
- :mod:`~sepconv.calibrate.allocation`: measured output error of every candidate rank, for the allocation;
- :mod:`~sepconv.calibrate.gram`, :mod:`~sepconv.calibrate.project`, :mod:`~sepconv.calibrate.features`: the
  streamed least squares and the linear algebra view of a converted layer;
- :mod:`~sepconv.calibrate.reference`: the original's outputs kept from the measuring pass for the refit;
- :mod:`~sepconv.calibrate.graph`, :mod:`~sepconv.calibrate.lockstep`: passes that stop at a layer and go on from
  there, both models in lockstep under a memory budget;
- :mod:`~sepconv.calibrate.refit`, :mod:`~sepconv.calibrate.alternating`: the forward-order refit;
- :mod:`~sepconv.calibrate.compare`, :mod:`~sepconv.calibrate.progress`: model-level comparison, progress bar.

Everything here works on statistics streamed batch by batch; activations of the whole calibration set are held
only within a memory budget (:data:`~sepconv.calibrate.lockstep.BUDGET`).
"""

from .batches import CalibrationData
from .refit import REFITS

__all__ = ["REFITS", "CalibrationData"]
