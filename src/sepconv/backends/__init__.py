"""The implementations behind the separable layers and the one place that chooses between them.

- :mod:`~sepconv.backends.dispatch`: :func:`choose`/:func:`explain` which path runs a layer and why,
  :func:`set_backend` (also a context manager), :func:`freeze`;
- :mod:`~sepconv.backends.onednn`: prepacked oneDNN convs with fused post-ops (CPU inference);
- :mod:`~sepconv.backends.channels_last`: both PyTorch steps in channels_last (CPU);
- :mod:`~sepconv.backends.triton`: the fused Triton kernel (CUDA, or Triton's CPU interpreter); Triton is an
  optional dependency (``pip install sepconv[gpu]``) imported only when a call can use it;
- :mod:`~sepconv.backends.env`, :mod:`~sepconv.backends.guards`, :mod:`~sepconv.backends.fold`: environment
  facts, per-call guards and norm folding shared by the paths.

This package works on weights, geometry and the layers' duck-typed sub-modules; it never imports
:mod:`sepconv.layers`.

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(4, 8, 3).eval()
    >>> with torch.no_grad(), sepconv.set_backend("torch"):
    ...     explain(layer, torch.randn(1, 4, 8, 8)).path
    'torch'
"""

from .dispatch import (
    BACKENDS,
    PATHS,
    BackendChange,
    Explanation,
    choose,
    explain,
    freeze,
    get_backend,
    post_steps,
    remembered,
    separable_forward,
    set_backend,
)
from .guards import needs_grad

__all__ = [
    "BACKENDS",
    "PATHS",
    "BackendChange",
    "Explanation",
    "choose",
    "explain",
    "freeze",
    "get_backend",
    "needs_grad",
    "post_steps",
    "remembered",
    "separable_forward",
    "set_backend",
]
