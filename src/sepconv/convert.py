"""Closed-form conversion of a trained model's standard convolutions into separable ones.

:func:`convert` copies the model, replaces every eligible ``nn.Conv2d``/``nn.Conv1d`` by the optimal
depthwise separable (:meth:`SeparableConv2d.from_conv`, ``method='depthwise'``) or spatially separable
(:meth:`SpatiallySeparableConv2d.from_conv`, ``method='spatial'``, 2D only) layer of a chosen rank, and
returns the new model with a :class:`ConversionReport`.

How ranks are chosen:

* ``rank=r``: every layer gets ``r`` (depth multiplier or mid channels), clipped to the layer's exact rank
  (mid channels rounded down to a multiple of ``groups``).
* ``energy=e``: every layer gets the smallest rank keeping a fraction ``e`` of its weight's squared singular
  values (relative weight error ``<= sqrt(1 - e)``).
* ``budget=b``: the converted model's multiply-adds (MACs, summed over every convolution of the model) are at
  most ``b`` times the original's. The summed squared relative weight errors of the converted layers (a proxy
  for the summed output error) are minimised greedily: every layer starts at rank 1, then the upgrade with the
  largest error reduction per extra MAC that still fits is applied, repeatedly, moving along each layer's lower
  convex hull of (MACs, error) points; the original conv (error 0) is the last point of every hull.

In every mode a layer whose separable form costs as many MACs as the original or more stays a standard conv.
MACs count every output position when ``example_inputs`` is given (shapes are recorded by a forward pass);
without it they are per output position of each layer (``macs_unit`` in the report says which).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1))
    >>> new, report = convert(model, "depthwise", budget=0.5, example_inputs=torch.randn(1, 3, 16, 16))
    >>> type(new[2]).__name__, report.macs_after <= 0.5 * report.macs_before
    ('SeparableConv2d', True)
    >>> sorted(report.to_dict())[:3]
    ['budget', 'layers', 'macs_after']
"""

from __future__ import annotations

import copy
import fnmatch
import heapq
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import _checks
from .errors import ArgumentError
from .factorize import _conv_weight, _depthwise_decompose, _spatial_decompose
from .layers.depthwise import DepthwiseConvNd
from .layers.separable import SeparableConv1d, SeparableConv2d, SeparableConvNd
from .layers.spatial import SpatiallySeparableConv2d

__all__ = ["METHODS", "ConversionReport", "LayerReport", "convert"]

METHODS = ("depthwise", "spatial")
_COMPOSITE = (SeparableConvNd, SpatiallySeparableConv2d)


@dataclass
class LayerReport:
    """One converted (or kept) layer: ``method`` is ``'depthwise'``, ``'spatial'`` or ``'kept'``."""

    name: str
    method: str
    rank: int | None
    max_rank: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    weight_error: float
    output_error: float | None = None


@dataclass
class ConversionReport:
    """What :func:`convert` did: per layer and totals; ``print(report)`` shows a table, ``to_json()`` serialises.

    Totals: ``params_*`` count every parameter of the model, ``macs_*`` every convolution's multiply-adds in
    ``macs_unit`` (``'per forward pass'`` with example inputs, else ``'per output position'``).
    ``output_error`` is the model's relative output error on the example inputs (``None`` without them).
    """

    method: str
    budget: float | None
    macs_unit: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    output_error: float | None
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def mac_ratio(self) -> float:
        """``macs_after / macs_before``."""
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    def to_dict(self) -> dict:
        """Plain ``dict`` (JSON-ready) of every field."""
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> object:
        """A :class:`rich.table.Table` of the layers and totals."""
        from rich.table import Table

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.2e}" if 0 < value < 1e-3 else f"{value:.4f}"

        table = Table(title=f"sepconv convert --method {self.method}"
                      + (f" --budget {self.budget}" if self.budget is not None else ""),
                      caption=f"MACs {self.macs_unit}")
        for name in ("layer", "method", "rank", "params", "params new", "MACs", "MACs new", "weight err", "output err"):
            table.add_column(name, justify="left" if name in ("layer", "method") else "right")
        for row in self.layers:
            table.add_row(row.name, row.method, "-" if row.rank is None else f"{row.rank}/{row.max_rank}",
                          f"{row.params_before:,}", f"{row.params_after:,}", f"{row.macs_before:,}",
                          f"{row.macs_after:,}", fmt(row.weight_error), fmt(row.output_error))
        table.add_section()
        table.add_row("model", "", "", f"{self.params_before:,}", f"{self.params_after:,}", f"{self.macs_before:,}",
                      f"{self.macs_after:,} ({self.mac_ratio:.1%})", "", fmt(self.output_error))
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=140, record=True, file=_Null())
        console.print(self.table())
        return console.export_text()


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


# ------------------------------------------------------------------------------------------- candidates
@dataclass
class _Candidate:
    name: str
    conv: nn.Module
    out_positions: int = 1
    mid_positions: int = 1  # spatial: positions of the vertical step's output (H_out * W_in)
    decomposition: object = None  # factorize's one decomposition of the weight, reused for every rank
    costs: list[int] = field(default_factory=list)  # MACs at rank unit 1..R
    errors: list[float] = field(default_factory=list)  # squared relative weight error at rank unit 1..R
    original: int = 0
    unit: int = 1  # rank = unit * index (groups for spatial)


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, DepthwiseConvNd))


def _walk(module: nn.Module, prefix: str = ""):
    """``(name, conv)`` for every ``nn.Conv1d/2d`` not inside a sepconv composite layer."""
    for name, child in module._modules.items():  # not named_children(): it hides a module's second occurrence
        if child is None:
            continue
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, (nn.Conv1d, nn.Conv2d)):
            yield full, child
        elif not isinstance(child, _COMPOSITE):
            yield from _walk(child, full)


def _eligible(conv: nn.Module, method: str) -> bool:
    if isinstance(conv, DepthwiseConvNd):  # an nn.Conv{n}d subclass, but already separable
        return False
    if method == "spatial" and not isinstance(conv, nn.Conv2d):
        return False
    if all(k == 1 for k in conv.kernel_size):
        return False
    return not (conv.groups > 1 and conv.groups == conv.in_channels)


def _globs(value: object, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ArgumentError(f"{name} must be a module-name glob or a list of globs, got {value!r}")


def _layer_cost(c: _Candidate, method: str, rank: int) -> tuple[int, int]:
    """(MACs, weight params) of the separable form of rank ``rank`` (bias excluded)."""
    conv = c.conv
    cin, n, g = conv.in_channels, conv.out_channels, conv.groups
    if method == "depthwise":
        kprod = math.prod(conv.kernel_size)
        dw, pw = cin * rank * kprod, n * cin * rank // g
        return (dw + pw) * c.out_positions, dw + pw
    kh, kw = conv.kernel_size
    vertical, horizontal = rank * (cin // g) * kh, n * (rank // g) * kw
    return vertical * c.mid_positions + horizontal * c.out_positions, vertical + horizontal


def _prepare(c: _Candidate, method: str) -> None:
    conv = c.conv
    weight = _conv_weight(conv.weight.detach(), conv.groups, 3, 5)
    if method == "depthwise":
        c.decomposition = _depthwise_decompose(weight, conv.groups)
        spectrum = c.decomposition.s[:, :min(conv.out_channels // conv.groups, math.prod(conv.kernel_size))]
    else:
        c.decomposition = _spatial_decompose(weight, conv.groups)
        spectrum = c.decomposition.s
        c.unit = conv.groups
    energy = spectrum.double().square()
    total = float(energy.sum())
    kept = energy.sum(0).cumsum(0)  # kept energy at per-group/per-channel rank 1..R
    c.errors = [max(0.0, 1 - float(k) / total) if total > 0 else 0.0 for k in kept]
    c.costs = [_layer_cost(c, method, c.unit * (i + 1))[0] for i in range(len(c.errors))]
    c.original = weight.numel() * c.out_positions


def _hull(c: _Candidate) -> list[tuple[int, float, int | None]]:
    """Lower convex hull of (cost, error, rank index) from rank 1 to the original conv (rank ``None``)."""
    points = [(cost, err, i) for i, (cost, err) in enumerate(zip(c.costs, c.errors)) if cost < c.original]
    points.append((c.original, 0.0, None))
    hull: list[tuple[int, float, int | None]] = []
    for p in points:
        while len(hull) >= 2:
            (c0, e0, _), (c1, e1, _) = hull[-2], hull[-1]
            # drop the middle point if it gives less error reduction per MAC than going straight to p
            if (e0 - e1) * (p[0] - c0) <= (e0 - p[1]) * (c1 - c0):
                hull.pop()
            else:
                break
        if hull and p[1] >= hull[-1][1]:  # no error reduction: never worth paying for
            continue
        hull.append(p)
    return hull


def _allocate(cands: list[_Candidate], fixed: int, total_before: int, budget: float) -> list[int | None]:
    """Greedy rank allocation under ``budget``; returns a rank index per candidate (``None`` = keep conv)."""
    hulls = [_hull(c) for c in cands]
    position = [0] * len(cands)
    spent = fixed + sum(h[0][0] for h in hulls)
    limit = budget * total_before
    if spent > limit * (1 + 1e-12):
        raise ArgumentError(f"budget={budget} cannot be met: the cheapest conversion (rank 1 everywhere) keeps "
                            f"{spent / total_before:.3f} of the MACs; use a budget >= {spent / total_before:.3f}")
    heap: list[tuple[float, int]] = []

    def push(i: int) -> None:
        h, p = hulls[i], position[i]
        if p + 1 < len(h):
            gain, cost = h[p][1] - h[p + 1][1], h[p + 1][0] - h[p][0]
            heapq.heappush(heap, (-gain / max(cost, 1), i))

    for i in range(len(cands)):
        push(i)
    while heap:
        _, i = heapq.heappop(heap)
        h, p = hulls[i], position[i]
        extra = h[p + 1][0] - h[p][0]
        if spent + extra <= limit:
            spent += extra
            position[i] += 1
            push(i)
    return [hulls[i][position[i]][2] for i in range(len(cands))]


# ------------------------------------------------------------------------------------------ measurement
def _as_tuple(example_inputs: object) -> tuple:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise ArgumentError(f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _relative_error(new: object, ref: object) -> float:
    pairs = list(zip(_tensors(new), _tensors(ref)))
    num = sum(float((a.double() - b.double()).square().sum()) for a, b in pairs)
    den = sum(float(b.double().square().sum()) for _, b in pairs)
    return math.sqrt(num / den) if den > 0 else math.sqrt(num)


def _run_eval(model: nn.Module, inputs: tuple) -> object:
    modes = {m: m.training for m in model.modules()}
    for module in modes:  # the flags themselves: a torch.export module refuses .eval() but runs fine
        module.training = False
    try:
        with torch.no_grad():
            return model(*inputs)
    finally:
        for module, mode in modes.items():
            module.training = mode


# ------------------------------------------------------------------------------------------------ api
def _check_number(value: object, name: str, low: float, high: float) -> float:
    return _checks.number(value, name, low=low, high=high, low_open=True)


def convert(
    model: nn.Module,
    method: str = "depthwise",
    *,
    budget: float | None = None,
    rank: int | None = None,
    energy: float | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    example_inputs: torch.Tensor | tuple | None = None,
) -> tuple[nn.Module, ConversionReport]:
    """Replace the model's standard convs by optimal separable ones; the original model is not modified.

    Eligible: every ``nn.Conv2d`` and ``nn.Conv1d`` (``'spatial'``: ``nn.Conv2d`` only) that is not 1x1, not
    already depthwise (``groups == in_channels > 1``), not a sub-layer of a sepconv separable layer, matched by
    ``include`` and not by ``exclude`` (globs on names from ``named_modules()``). See the module docstring for
    how ranks are chosen. Train/eval mode, device and dtype of every layer are kept.

    Args:
        model: any ``nn.Module`` (convs may sit in ``Sequential``, ``ModuleList``, ``ModuleDict``, nested).
        method: ``'depthwise'`` (depthwise + pointwise) or ``'spatial'`` (``kh x 1`` then ``1 x kw``).
        budget: MAC budget in ``(0, 1]`` relative to the original model.
        rank: one rank for every layer (depth multiplier / mid channels), a positive int.
        energy: per-layer kept energy in ``(0, 1]``.
        include, exclude: module-name globs (a string or a list of them).
        example_inputs: a tensor or tuple of tensors for ``model(*example_inputs)``: counts MACs per forward pass
            and measures every layer's and the model's relative output error (in eval mode).

    Returns:
        ``(new_model, report)``.

    Raises:
        ArgumentError: unknown method, not exactly one of budget/rank/energy, values out of range,
            unreachable budget, no eligible conv.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    given = [n for n, v in (("budget", budget), ("rank", rank), ("energy", energy)) if v is not None]
    if len(given) != 1:
        raise ArgumentError(f"give exactly one of budget, rank and energy, got {', '.join(given) or 'none'}")
    if budget is not None:
        budget = _check_number(budget, "budget", 0, 1)
    if energy is not None:
        energy = _check_number(energy, "energy", 0, 1)
    if rank is not None:
        rank = int(_checks.number(rank, "rank", low=1, integer=True))
    includes, excludes = _globs(include, "include"), _globs(exclude, "exclude")

    new_model = copy.deepcopy(model)
    names: dict[int, list[str]] = {}
    for name, conv in _walk(new_model):  # a conv shared by several parents is converted once, replaced everywhere
        names.setdefault(id(conv), []).append(name)
    cands = [
        _Candidate(name, conv) for name, conv in _walk(new_model)
        if names[id(conv)][0] == name and _eligible(conv, method)
        and (includes is None or any(fnmatch.fnmatchcase(name, g) for g in includes))
        and not (excludes is not None and any(fnmatch.fnmatchcase(name, g) for g in excludes))
    ]
    if not cands:
        raise ArgumentError(f"no eligible conv for method={method!r} in {type(model).__name__} (1x1, depthwise, "
                            f"{'non-2D, ' if method == 'spatial' else ''}included/excluded ones are skipped)")

    # shapes and activations
    convs = {id(m): m for m in new_model.modules() if _is_conv(m)}
    out_positions: dict[int, int] = {}
    records: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    reference = None
    inputs = None if example_inputs is None else _as_tuple(example_inputs)
    if inputs is not None:
        wanted = {id(c.conv) for c in cands}

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            out_positions[id(module)] = math.prod(output.shape[2:])
            if id(module) in wanted:
                records[id(module)] = (args[0].detach(), output.detach())

        handles = [m.register_forward_hook(hook) for m in convs.values()]
        try:
            reference = _run_eval(new_model, inputs)
        finally:
            for handle in handles:
                handle.remove()
    for c in cands:
        if inputs is not None:
            if id(c.conv) not in records:
                raise ArgumentError(f"layer {c.name!r} was not called by model(*example_inputs)")
            x, y = records[id(c.conv)]
            c.out_positions = math.prod(y.shape[2:])
            c.mid_positions = y.shape[2] * x.shape[3] if method == "spatial" else c.out_positions
        _prepare(c, method)
    macs_before = sum(m.weight.numel() * out_positions.get(i, 1) for i, m in convs.items())
    fixed = macs_before - sum(c.original for c in cands)

    # ranks (as indices into c.costs; None keeps the conv)
    if budget is not None:
        choice = _allocate(cands, fixed, macs_before, budget)
    else:
        choice = []
        for c in cands:
            if rank is not None:
                index = min(rank // c.unit, len(c.costs)) - 1
                index = max(index, 0)
            else:
                index = next(i for i, e in enumerate(c.errors) if 1 - e >= energy - 1e-12)  # type: ignore[operator]
            choice.append(index if c.costs[index] < c.original else None)

    layers = []
    for c, index in zip(cands, choice):
        conv = c.conv
        bias = 0 if conv.bias is None else conv.bias.numel()
        params_before = conv.weight.numel() + bias
        max_rank = c.unit * len(c.costs)
        if index is None:
            c.decomposition = None
            layers.append(LayerReport(c.name, "kept", None, max_rank, params_before, params_before, c.original,
                                      c.original, 0.0, 0.0 if inputs is not None else None))
            continue
        r = c.unit * (index + 1)
        if method == "depthwise":
            cls = SeparableConv1d if isinstance(conv, nn.Conv1d) else SeparableConv2d
            layer = cls.from_factors(conv, c.decomposition.factors(r))
        else:
            layer = SpatiallySeparableConv2d.from_factors(conv, c.decomposition.factors(r))
        c.decomposition = None  # free the float64 matrices as we go
        output_error = None
        if inputs is not None:
            x, y = records[id(conv)]
            output_error = _relative_error(_run_eval(layer, (x,)), y)
        for name in names[id(conv)]:
            parent_name, _, child = name.rpartition(".")
            setattr(new_model.get_submodule(parent_name), child, layer)
        macs, params = _layer_cost(c, method, r)
        layers.append(LayerReport(c.name, method, r, max_rank, params_before, params + bias, c.original, macs,
                                  math.sqrt(c.errors[index]), output_error))

    output_error = None
    if inputs is not None:
        output_error = _relative_error(_run_eval(new_model, inputs), reference)
    report = ConversionReport(
        method=method, budget=budget, macs_unit="per forward pass" if inputs is not None else "per output position",
        params_before=sum(p.numel() for p in model.parameters()),
        params_after=sum(p.numel() for p in new_model.parameters()),
        macs_before=macs_before,
        macs_after=macs_before - sum(r.macs_before - r.macs_after for r in layers),
        output_error=output_error, layers=layers,
    )
    return new_model, report
