"""Closed-form conversion of a trained model's standard convolutions into separable ones.

:func:`convert` copies the model, replaces every eligible ``nn.Conv2d``/``nn.Conv1d`` by the optimal
depthwise separable (:meth:`SeparableConv2d.from_factors`, ``method='depthwise'``) or spatially separable
(:meth:`SpatiallySeparableConv2d.from_factors`, ``method='spatial'``, 2D only) layer of a chosen rank, and
returns the new model with a :class:`ConversionReport`. The phases: validate the arguments, collect the
candidate convs, measure (shapes and statistics from example inputs or calibration data), allocate ranks,
replace the convs, refit on calibration data, report.

How ranks are chosen:

* ``rank=r``: every layer gets ``r`` (depth multiplier or mid channels), clipped to the layer's exact rank
  (mid channels rounded down to a multiple of ``groups``).
* ``energy=e``: every layer gets the smallest rank keeping a fraction ``e`` of its weight's squared singular
  values (relative weight error ``<= sqrt(1 - e)``).
* ``budget=b``: the converted model's multiply-adds (MACs, summed over every convolution of the model) are at
  most ``b`` times the original's. The summed squared relative errors of the converted layers are minimised
  greedily: every layer starts at rank 1, then the upgrade with the largest error reduction per extra MAC that
  still fits is applied, repeatedly, moving along each layer's lower convex hull of (MACs, error) points; the
  original conv (error 0) is the last point of every hull. Without calibration data the errors are the
  weights' (a proxy); with it they are each layer's *measured output* errors on the calibration inputs, after
  the refit that will follow (:mod:`sepconv.calibrate.allocation`).

In every mode a layer whose separable form costs as many MACs as the original or more stays a standard conv.
MACs count every output position when ``example_inputs`` or ``calibration`` is given (shapes are recorded by a
forward pass); without either they are per output position of each layer (``macs_unit`` in the report says which).

Calibration (``calibration=`` unlabelled inputs, :mod:`sepconv.calibrate`): after the closed-form factorization
each converted layer is refitted in forward order by ridge least squares on the calibration activations (its
second step and bias, ``refit='pointwise'``; also its first step, ``refit='alternating'``), so that it reproduces
the original layer's outputs on the original model's inputs; activations are streamed batch by batch. Each
layer's statistics use a bounded number of output positions, so the passes run over the inputs that provide them
(``calibration_images='auto'``: :func:`~sepconv.calibrate.images.needed_images`, at least 256, spread evenly
over the data; ``'all'``, or a count); ``report.calibration`` gives ``images`` used of ``images_given``. The
report then gives every layer's calibration output error before and after the refit and, in
``report.calibration``, the model's relative output error and (for ``(B, classes)`` outputs) the arg-max
agreement with the original, before and after. ``report.plan`` lists the layers built, so that
:func:`sepconv.apply_plan` rebuilds the architecture and a saved ``state_dict`` can be loaded.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1))
    >>> new, report = convert(model, "depthwise", budget=0.5, example_inputs=torch.randn(1, 3, 16, 16))
    >>> type(new[2]).__name__, report.macs_after <= 0.5 * report.macs_before
    ('SeparableConv2d', True)
    >>> new, report = convert(model, "depthwise", budget=0.5, calibration=torch.randn(64, 3, 16, 16))
    >>> report.calibration["output_error_after"] < report.calibration["output_error_before"]
    True
    >>> [layer["type"] for layer in report.plan["layers"]]
    ['SeparableConv2d']
"""

from __future__ import annotations

import copy
import fnmatch
import heapq
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from . import _checks
from ._rich_table import rich_table
from .calibrate.allocation import error_curve
from .calibrate.batches import CalibrationData
from .calibrate.capture import Tap, eval_mode, run
from .calibrate.compare import OutputComparison
from .calibrate.images import needed_images
from .calibrate.lockstep import BUDGET
from .calibrate.measure import LayerTrace, measure
from .calibrate.progress import CalibrationProgress
from .calibrate.reference import Reference
from .calibrate.refit import RefitResult, Target, refit_layers
from .choices import CONVERSION_METHODS as METHODS
from .choices import REFITS
from .errors import ArgumentError
from .factorize import depthwise_decomposition, spatial_decomposition
from .layers.depthwise import DepthwiseConvNd
from .layers.separable import SeparableConv1d, SeparableConv2d, SeparableConvNd
from .layers.spatial import SpatiallySeparableConv2d
from .plan import FORMAT, VERSION, build_layer, layer_entry

__all__ = ["METHODS", "REFITS", "ConversionReport", "LayerReport", "convert"]

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
    calib_error_before: float | None = None
    calib_error_after: float | None = None


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
    calibration: dict | None = None
    plan: dict | None = None

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

    def table_data(self) -> tuple[str, list[str], list[list[str] | None], str]:
        """Title, columns, rows (``None``: the line before the model's totals) and caption of the report's table."""
        calibrated = self.calibration is not None
        title = f"sepconv convert --method {self.method}" + (f" --budget {self.budget}" if self.budget is not None
                                                              else "")
        columns = ["layer", "method", "rank", "params", "params new", "MACs", "MACs new", "weight err", "output err"]
        columns += ["calib err before -> after"] if calibrated else []
        rows: list[list[str] | None] = []
        for row in self.layers:
            cells = [row.name, row.method, "-" if row.rank is None else f"{row.rank}/{row.max_rank}",
                     f"{row.params_before:,}", f"{row.params_after:,}", f"{row.macs_before:,}",
                     f"{row.macs_after:,}", _fmt(row.weight_error), _fmt(row.output_error)]
            rows.append(cells + ([_arrow(row.calib_error_before, row.calib_error_after)] if calibrated else []))
        rows.append(None)
        cells = ["model", "", "", f"{self.params_before:,}", f"{self.params_after:,}", f"{self.macs_before:,}",
                 f"{self.macs_after:,} ({self.mac_ratio:.1%})", "", _fmt(self.output_error)]
        calib = self.calibration or {}
        rows.append(cells + ([_arrow(calib.get("output_error_before"), calib.get("output_error_after"))]
                             if calibrated else []))
        return title, columns, rows, self._caption()

    def _caption(self) -> str:
        caption = f"MACs {self.macs_unit}"
        calib = self.calibration
        if calib is not None:
            given, compared = calib.get("images_given", calib["images"]), calib.get("compared_images")
            used = f"{calib['images']} of {given}" if given != calib["images"] else f"{calib['images']}"
            caption += f"; calibration: {used} inputs, refit {calib['refit']}, {calib['seconds']:.1f} s"
            if calib.get("agreement_after") is not None:
                caption += (f"; top-1 agreement with the original {calib['agreement_before']:.1%} -> "
                            f"{calib['agreement_after']:.1%}")
            if compared is not None and compared != calib["images"]:
                caption += f" (outputs compared on {compared} inputs)"
        return caption

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=140, record=True, file=_Null())
        title, columns, rows, caption = self.table_data()
        console.print(rich_table(title, columns, rows, caption=caption))
        return console.export_text()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}" if 0 < value < 1e-3 else f"{value:.4f}"


def _arrow(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None else f"{_fmt(before)} -> {_fmt(after)}"


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- options
@dataclass
class _Options:
    """The checked arguments of :func:`convert`."""

    method: str
    budget: float | None
    rank: int | None
    energy: float | None
    includes: list[str] | None
    excludes: list[str] | None
    refit: str
    ridge: float
    progress: bool | None
    images: int | str = "auto"  # calibration_images: 'auto', 'all' or a count


def _validate(model: object, method: object, budget: object, rank: object, energy: object, include: object,
              exclude: object, calibration: object, refit: object, ridge: object, progress: object,
              images: object) -> _Options:
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    given = [n for n, v in (("budget", budget), ("rank", rank), ("energy", energy)) if v is not None]
    if len(given) != 1:
        raise ArgumentError(f"give exactly one of budget, rank and energy, got {', '.join(given) or 'none'}")
    if budget is not None:
        budget = _checks.number(budget, "budget", low=0, high=1, low_open=True)
    if energy is not None:
        energy = _checks.number(energy, "energy", low=0, high=1, low_open=True)
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ArgumentError(f"rank must be a positive int, got {rank!r}")
    if refit is None:
        refit = "none" if calibration is None else "pointwise"
    if refit not in REFITS:
        raise ArgumentError(f"refit must be one of {REFITS}, got {refit!r}")
    if refit != "none" and calibration is None:
        raise ArgumentError(f"refit={refit!r} needs calibration data: pass calibration=inputs (or refit='none')")
    if progress is not None and not isinstance(progress, bool):
        raise ArgumentError(f"progress must be True, False or None (a terminal decides), got {progress!r}")
    if images not in ("auto", "all"):
        try:
            images = _checks.positive_int(images, "calibration_images")
        except ArgumentError:
            raise ArgumentError(f"calibration_images must be 'auto', 'all' or a positive int, got {images!r}") from None
    return _Options(str(method), budget, rank, energy, _globs(include, "include"), _globs(exclude, "exclude"),
                    str(refit), _checks.number(ridge, "ridge", low=0), progress, images)  # type: ignore[arg-type]


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
    curve: list[float] | None = None  # squared relative output error measured on calibration data
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


def _candidates(new_model: nn.Module, model: nn.Module, options: _Options) -> tuple[list[_Candidate], dict]:
    """The eligible convs of ``new_model`` (first name of each) and every name of every conv (``id -> names``)."""
    names: dict[int, list[str]] = {}
    for name, conv in _walk(new_model):  # a conv shared by several parents is converted once, replaced everywhere
        names.setdefault(id(conv), []).append(name)

    def matches(name: str, globs: list[str] | None) -> bool:
        return globs is not None and any(fnmatch.fnmatchcase(name, g) for g in globs)

    cands = [_Candidate(name, conv) for name, conv in _walk(new_model)
             if names[id(conv)][0] == name and _eligible(conv, options.method)
             and (options.includes is None or matches(name, options.includes)) and not matches(name, options.excludes)]
    if not cands:
        raise ArgumentError(f"no eligible conv for method={options.method!r} in {type(model).__name__} (1x1, "
                            f"depthwise, {'non-2D, ' if options.method == 'spatial' else ''}included/excluded ones "
                            "are skipped)")
    return cands, names


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
    weight = conv.weight.detach()
    if method == "depthwise":
        c.decomposition = depthwise_decomposition(weight, conv.groups)
        spectrum = c.decomposition.s[:, :min(conv.out_channels // conv.groups, math.prod(conv.kernel_size))]
    else:
        c.decomposition = spatial_decomposition(weight, conv.groups)
        spectrum = c.decomposition.s
        c.unit = conv.groups
    energy = spectrum.double().square()
    total = float(energy.sum())
    kept = energy.sum(0).cumsum(0)  # kept energy at per-group/per-channel rank 1..R
    c.errors = [max(0.0, 1 - float(k) / total) if total > 0 else 0.0 for k in kept]
    c.costs = [_layer_cost(c, method, c.unit * (i + 1))[0] for i in range(len(c.errors))]
    c.original = weight.numel() * c.out_positions


# ------------------------------------------------------------------------------------------ measurement
def _as_tuple(example_inputs: object) -> tuple:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise ArgumentError(f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}")


def _relative_error(new: object, ref: object) -> float:
    comparison = OutputComparison()
    comparison.add(new, ref)
    return comparison.error


def _run_eval(model: nn.Module, inputs: tuple, taps: Sequence[Tap] = ()) -> object:
    with eval_mode(model):
        return run(model, inputs, taps)


@dataclass
class _Measured:
    """What the forward passes before the conversion saw (shapes, example records, calibration traces)."""

    positions: dict[int, int] = field(default_factory=dict)
    records: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    reference: object = None
    inputs: tuple | None = None
    traces: dict[int, LayerTrace] = field(default_factory=dict)
    data: CalibrationData | None = None
    reference: Reference | None = None


def _measure_examples(new_model: nn.Module, cands: list[_Candidate], measured: _Measured) -> None:
    """One forward pass on ``example_inputs``: output shapes of every conv, candidates' (last) input and output."""
    wanted = {id(c.conv) for c in cands}

    def keep(key: int) -> Callable[[torch.Tensor, torch.Tensor], None]:
        def record(x: torch.Tensor, y: torch.Tensor) -> None:
            if key in wanted:
                measured.records[key] = (x, y)
        return record

    taps = [Tap(m, callback=keep(id(m))) for m in new_model.modules() if _is_conv(m)]
    measured.reference = _run_eval(new_model, measured.inputs, taps)  # type: ignore[arg-type]
    measured.positions = {id(t.module): math.prod(t.shapes[-1][2:]) for t in taps if t.shapes}
    for c in cands:
        if id(c.conv) not in measured.records:
            raise ArgumentError(f"layer {c.name!r} was not called by model(*example_inputs)")


def _model_place(model: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    """The floating dtype and the device of the model's first floating parameter (``None`` without any)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return None, None


def _measure_calibration(new_model: nn.Module, cands: list[_Candidate], measured: _Measured,
                         bar: CalibrationProgress) -> None:
    """The measuring pass over the calibration data (see :mod:`sepconv.calibrate.measure`)."""
    bar.start("measuring")
    others = [m for m in new_model.modules() if _is_conv(m)]
    measured.reference = Reference(BUDGET // 2) if measured.data.ordered else None  # type: ignore[union-attr]
    measured.traces, positions = measure(new_model, {c.name: c.conv for c in cands}, measured.data, others,
                                         on_batch=bar.advance, reference=measured.reference)  # type: ignore[arg-type]
    if not measured.positions:  # example inputs, when given, define the MACs per forward pass
        measured.positions = positions
    for c in cands:
        if measured.traces[id(c.conv)].stats is None:
            raise ArgumentError(f"layer {c.name!r} was not called by the model on the calibration data")


def _shapes(cands: list[_Candidate], measured: _Measured, method: str) -> None:
    """Output (and spatial mid) positions of each candidate, from example inputs or calibration data."""
    for c in cands:
        if id(c.conv) in measured.records:
            x, y = measured.records[id(c.conv)]
            c.out_positions = math.prod(y.shape[2:])
            c.mid_positions = y.shape[2] * x.shape[-1] if method == "spatial" else c.out_positions
        elif id(c.conv) in measured.traces:
            trace = measured.traces[id(c.conv)]
            c.out_positions = trace.out_positions
            c.mid_positions = trace.mid_positions if method == "spatial" else c.out_positions


def _curves(cands: list[_Candidate], measured: _Measured, options: _Options) -> None:
    """Measured output-error curves (the allocation's errors) of every candidate's affordable ranks."""
    for c in cands:
        affordable = sum(1 for cost in c.costs if cost < c.original)
        c.curve = [] if affordable == 0 else error_curve(measured.traces[id(c.conv)], options.method,
                                                         c.decomposition, affordable, options.refit != "none")


# ------------------------------------------------------------------------------------------- allocation
def _hull(c: _Candidate) -> list[tuple[int, float, int | None]]:
    """Lower convex hull of (cost, error, rank index) from rank 1 to the original conv (rank ``None``)."""
    errors = c.errors if c.curve is None else c.curve
    points = [(cost, err, i) for i, (cost, err) in enumerate(zip(c.costs, errors)) if cost < c.original]
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


def _choose(cands: list[_Candidate], options: _Options, fixed: int, macs_before: int) -> list[int | None]:
    """Rank index per candidate (``None`` keeps the conv) for the budget, rank or energy asked."""
    if options.budget is not None:
        return _allocate(cands, fixed, macs_before, options.budget)
    choice: list[int | None] = []
    for c in cands:
        if options.rank is not None:
            index = max(min(options.rank // c.unit, len(c.costs)) - 1, 0)
        else:
            index = next(i for i, e in enumerate(c.errors) if 1 - e >= options.energy - 1e-12)  # type: ignore[operator]
        choice.append(index if c.costs[index] < c.original else None)
    return choice


# ---------------------------------------------------------------------------------------------- replace
def _build(c: _Candidate, method: str, rank: int) -> nn.Module:
    if method == "spatial":
        kind: type[nn.Module] = SpatiallySeparableConv2d
    else:
        kind = SeparableConv1d if isinstance(c.conv, nn.Conv1d) else SeparableConv2d
    return build_layer(c.conv, kind, rank, c.decomposition.factors(rank))  # type: ignore[attr-defined]


def _replace(new_model: nn.Module, cands: list[_Candidate], choice: list[int | None], names: dict,
             options: _Options, measured: _Measured) -> tuple[list[LayerReport], list[tuple[_Candidate, nn.Module]]]:
    """Put the chosen layers into ``new_model``; their reports and the ``(candidate, layer)`` pairs built."""
    reports, built = [], []
    for c, index in zip(cands, choice):
        conv = c.conv
        bias = 0 if conv.bias is None else conv.bias.numel()
        params_before, max_rank = conv.weight.numel() + bias, c.unit * len(c.costs)
        if index is None:
            c.decomposition = None
            reports.append(LayerReport(c.name, "kept", None, max_rank, params_before, params_before, c.original,
                                       c.original, 0.0, 0.0 if measured.inputs is not None else None))
            continue
        r = c.unit * (index + 1)
        layer = _build(c, options.method, r)
        c.decomposition = None  # free the float64 matrices as we go
        output_error = None
        if measured.inputs is not None:
            x, y = measured.records[id(conv)]
            output_error = _relative_error(_run_eval(layer, (x,)), y)
        for name in names[id(conv)]:
            parent_name, _, child = name.rpartition(".")
            setattr(new_model.get_submodule(parent_name), child, layer)
        macs, params = _layer_cost(c, options.method, r)
        reports.append(LayerReport(c.name, options.method, r, max_rank, params_before, params + bias, c.original,
                                   macs, math.sqrt(c.errors[index]), output_error))
        built.append((c, layer))
    return reports, built


# -------------------------------------------------------------------------------------------- calibrate
def _calibrate(model: nn.Module, built: list[tuple[_Candidate, nn.Module]], new_model: nn.Module,
               measured: _Measured, options: _Options, bar: CalibrationProgress) -> RefitResult:
    """The forward-order refit of the converted layers (:mod:`sepconv.calibrate.refit`)."""
    traces = measured.traces
    ordered = sorted(built, key=lambda pair: traces[id(pair[0].conv)].order)
    targets = [Target(c.name, model.get_submodule(c.name), layer, traces[id(c.conv)].calls, options.method)
               for c, layer in ordered]
    bar.set_passes(2 + (len(targets) if options.refit != "none" else 0))
    return refit_layers(model, new_model, targets, measured.data, options.refit, options.ridge,  # type: ignore[arg-type]
                        bar, reference=measured.reference)


def _calibration_summary(result: RefitResult, reports: list[LayerReport], measured: _Measured,
                         options: _Options, seconds: float) -> dict:
    by_name = {fit.name: fit for fit in result.layers}
    for row in reports:
        fit = by_name.get(row.name)
        if fit is not None:
            row.calib_error_before, row.calib_error_after = fit.error_before, fit.error_after
    data = measured.data
    return {"images": data.images, "images_given": data.given,  # type: ignore[union-attr]
            "compared_images": result.compared, "batches": data.batches, "refit": options.refit,  # type: ignore

            "ridge": options.ridge, "allocation": "output error" if options.budget is not None else None,
            "output_error_before": result.before.error, "output_error_after": result.after.error,
            "agreement_before": result.before.agreement, "agreement_after": result.after.agreement,
            "seconds": seconds}


# ----------------------------------------------------------------------------------------------- report
def _plan(options: _Options, built: list[tuple[_Candidate, nn.Module]], names: dict) -> dict:
    return {"format": FORMAT, "version": VERSION, "method": options.method,
            "layers": [layer_entry(names[id(c.conv)], c.conv, layer) for c, layer in built]}


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
    calibration: object = None,
    refit: str | None = None,
    ridge: float = 1e-6,
    batch_size: int = 32,
    calibration_images: int | str = "auto",
    progress: bool | None = None,
) -> tuple[nn.Module, ConversionReport]:
    """Replace the model's standard convs by optimal separable ones; the original model is not modified.

    Eligible: every ``nn.Conv2d`` and ``nn.Conv1d`` (``'spatial'``: ``nn.Conv2d`` only) that is not 1x1, not
    already depthwise (``groups == in_channels > 1``), not a sub-layer of a sepconv separable layer, matched by
    ``include`` and not by ``exclude`` (globs on names from ``named_modules()``). See the module docstring for
    how ranks are chosen and what calibration does. Train/eval mode, device and dtype of every layer are kept.

    Args:
        model: any ``nn.Module`` (convs may sit in ``Sequential``, ``ModuleList``, ``ModuleDict``, nested).
        method: ``'depthwise'`` (depthwise + pointwise) or ``'spatial'`` (``kh x 1`` then ``1 x kw``).
        budget: MAC budget in ``(0, 1]`` relative to the original model.
        rank: one rank for every layer (depth multiplier / mid channels), a positive int.
        energy: per-layer kept energy in ``(0, 1]``.
        include, exclude: module-name globs (a string or a list of them).
        example_inputs: tensor(s) for ``model(*example_inputs)``: MACs per forward pass, measured output errors.
        calibration: unlabelled inputs: a tensor ``(N, ...)``, a tuple of tensors or a ``DataLoader`` (module doc).
        refit: ``'pointwise'`` (default with calibration), ``'alternating'`` or ``'none'``.
        ridge: relative ridge of the least-squares refit (``ridge · trace(G) / n`` is added to the Gram ``G``).
        batch_size: batch size used to split a calibration tensor.
        calibration_images: inputs the calibration passes use: ``'auto'`` (module docstring), ``'all'`` or a count.
        progress: show a progress bar of the calibration (``None``: only when stderr is a terminal).

    Returns:
        ``(new_model, report)``; ``report.plan`` rebuilds the architecture (:func:`sepconv.apply_plan`).

    Raises:
        ArgumentError: unknown method, not exactly one of budget/rank/energy, values out of range, unreachable
            budget, no eligible conv, bad calibration data (empty, NaN/inf, a one-shot iterator).
        ShapeError, DtypeMismatchError: calibration data that do not fit the model.
    """
    began, options = time.perf_counter(), _validate(model, method, budget, rank, energy, include, exclude,
                                                    calibration, refit, ridge, progress, calibration_images)
    new_model = copy.deepcopy(model)
    cands, names = _candidates(new_model, model, options)
    measured = _measured(model, new_model, cands, example_inputs, calibration, batch_size, options.images)
    with CalibrationProgress(options.progress if calibration is not None else False, 2 + len(cands),
                             measured.data.batches if measured.data is not None else 0) as bar:
        macs_before = _decompose(new_model, cands, measured, options, bar)
        choice = _choose(cands, options, macs_before - sum(c.original for c in cands), macs_before)
        reports, built = _replace(new_model, cands, choice, names, options, measured)
        result = None if measured.data is None else _calibrate(model, built, new_model, measured, options, bar)
    return new_model, _report(model, new_model, options, measured, macs_before, reports, built, names, result,
                              time.perf_counter() - began)


def _decompose(new_model: nn.Module, cands: list, measured: _Measured, options: _Options, bar: object) -> int:
    """Measure the calibration activations, decompose each candidate once and, for a calibrated budget, measure
    its output-error curve; return the model's multiply-adds before conversion."""
    if measured.data is not None:
        _measure_calibration(new_model, cands, measured, bar)
    _shapes(cands, measured, options.method)
    for c in cands:
        _prepare(c, options.method)
    if measured.data is not None and options.budget is not None:
        _curves(cands, measured, options)
    return sum(m.weight.numel() * measured.positions.get(id(m), 1) for m in new_model.modules() if _is_conv(m))


def _measured(model: nn.Module, new_model: nn.Module, cands: list, example_inputs: object, calibration: object,
              batch_size: int | None, images: int | str) -> _Measured:
    """The measurement phase of :func:`convert`: example-input positions and outputs, and the calibration data
    (the ``images`` of it that the passes use: see ``calibration_images``)."""
    measured = _Measured(inputs=None if example_inputs is None else _as_tuple(example_inputs))
    if measured.inputs is not None:
        _measure_examples(new_model, cands, measured)
    if calibration is not None:
        dtype, device = _model_place(model)
        data = CalibrationData(calibration, batch_size=batch_size, dtype=dtype, device=device)
        if images == "auto":
            images = needed_images(new_model, [c.conv for c in cands], data)
        measured.data = data if images == "all" else data.subset(images)  # type: ignore[arg-type]
    return measured


def _report(model: nn.Module, new_model: nn.Module, options: _Options, measured: _Measured, macs_before: int,
            reports: list, built: list, names: dict, result: object, seconds: float) -> ConversionReport:
    """The :class:`ConversionReport` of a finished conversion (the report phase of :func:`convert`)."""
    return ConversionReport(
        method=options.method, budget=options.budget, macs_unit="per output position" if not measured.positions
        else "per forward pass", params_before=sum(p.numel() for p in model.parameters()),
        params_after=sum(p.numel() for p in new_model.parameters()), macs_before=macs_before,
        macs_after=macs_before - sum(r.macs_before - r.macs_after for r in reports),
        output_error=None if measured.inputs is None else _relative_error(_run_eval(new_model, measured.inputs),
                                                                          measured.reference),
        layers=reports, plan=_plan(options, built, names),
        calibration=None if result is None else _calibration_summary(result, reports, measured, options, seconds))
