"""Conversion plans: rebuild a converted architecture from the original one, so a saved state_dict loads.

:func:`sepconv.convert` records in ``report.plan`` (and so in the report's JSON) which conv became which layer::

    {"format": "sepconv.plan", "version": 1, "method": "depthwise",
     "layers": [{"name": "features.3", "aliases": [], "type": "SeparableConv2d", "rank": 2,
                 "conv": {"in_channels": 32, "out_channels": 64, "kernel_size": [3, 3], "groups": 1}}]}

``rank`` is the depth multiplier (``SeparableConv1d/2d``) or the mid channels (``SpatiallySeparableConv2d``);
``aliases`` are further names of the same conv module (a conv shared by several parents); ``conv`` describes the
conv the layer replaces and is checked when the plan is applied. Convs the conversion kept are not listed.
:func:`apply_plan` replaces those convs of a freshly built original model by layers of the same class, geometry
and rank as :func:`sepconv.convert` built (through the same constructor, ``from_factors``), so
``load_state_dict`` of the converted model's weights works.

Example:
    >>> import torch, sepconv
    >>> from torch import nn
    >>> def build():
    ...     return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1))
    >>> converted, report = sepconv.convert(build(), "depthwise", rank=2)
    >>> rebuilt = apply_plan(build(), report.plan)
    >>> rebuilt.load_state_dict(converted.state_dict())
    <All keys matched successfully>
    >>> x = torch.randn(1, 3, 8, 8)
    >>> bool(torch.equal(rebuilt(x), converted(x)))
    True
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from .errors import ArgumentError, DataFormatError, ShapeError
from .factorize import DepthwiseFactors, SpatialFactors
from .layers import SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d

__all__ = ["FORMAT", "LAYER_TYPES", "VERSION", "apply_plan", "build_layer", "layer_entry", "load_plan"]

FORMAT, VERSION = "sepconv.plan", 1
LAYER_TYPES: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in
                                           (SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d)}


def _conv_spec(conv: nn.Module) -> dict:
    return {"in_channels": conv.in_channels, "out_channels": conv.out_channels,
            "kernel_size": list(conv.kernel_size), "groups": conv.groups}


def layer_entry(names: list[str], conv: nn.Module, layer: nn.Module) -> dict:
    """The plan entry of ``conv`` (known under ``names``) replaced by ``layer``."""
    rank = layer.mid_channels if isinstance(layer, SpatiallySeparableConv2d) else layer.depth_multiplier
    return {"name": names[0], "aliases": names[1:], "type": type(layer).__name__, "rank": int(rank),
            "conv": _conv_spec(conv)}


def _zero_factors(conv: nn.Module, kind: type[nn.Module], rank: int) -> DepthwiseFactors | SpatialFactors:
    weight, kernel = conv.weight, tuple(conv.kernel_size)
    zeros = dict(device=weight.device, dtype=weight.dtype)
    none = torch.zeros((), **zeros)
    if kind is SpatiallySeparableConv2d:
        vertical = torch.zeros(rank, conv.in_channels // conv.groups, kernel[0], 1, **zeros)
        horizontal = torch.zeros(conv.out_channels, rank // conv.groups, 1, kernel[1], **zeros)
        return SpatialFactors(vertical, horizontal, none, none)
    mid = conv.in_channels * rank
    depthwise = torch.zeros(mid, 1, *kernel, **zeros)
    pointwise = torch.zeros(conv.out_channels, mid // conv.groups, *([1] * len(kernel)), **zeros)
    return DepthwiseFactors(depthwise, pointwise, none, none)


def build_layer(conv: nn.Module, kind: type[nn.Module], rank: int,
                factors: DepthwiseFactors | SpatialFactors | None = None) -> nn.Module:
    """The separable layer of class ``kind`` and ``rank`` replacing ``conv`` (zero weights without ``factors``)."""
    return kind.from_factors(conv, factors if factors is not None else _zero_factors(conv, kind, rank))


def load_plan(plan: object) -> dict:
    """A plan dict from a plan, a report (dict, :class:`~sepconv.convert.ConversionReport`) or a JSON file path.

    Raises:
        DataFormatError: not a sepconv plan (or a report holding one), unreadable JSON.
        ArgumentError: a value of another type.
    """
    if isinstance(plan, (str, os.PathLike)):
        try:
            plan = json.loads(Path(plan).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{plan}: not a JSON file ({err.msg} at line {err.lineno})") from None
    elif hasattr(plan, "plan") and not isinstance(plan, dict):
        plan = plan.plan
    if not isinstance(plan, dict):
        raise ArgumentError(f"plan must be a plan dict, a conversion report or a JSON file path, got "
                            f"{type(plan).__name__}")
    if plan.get("format") != FORMAT and isinstance(plan.get("plan"), dict):
        plan = plan["plan"]
    if plan.get("format") != FORMAT or plan.get("version") != VERSION or not isinstance(plan.get("layers"), list):
        raise DataFormatError(f"not a {FORMAT} version {VERSION} plan (nor a conversion report holding one): "
                              f"format={plan.get('format')!r}, version={plan.get('version')!r}")
    return plan


def _check_entry(entry: object, index: int) -> tuple[str, list[str], type[nn.Module], int, dict]:
    if not isinstance(entry, dict):
        raise DataFormatError(f"plan layer {index} must be an object, got {type(entry).__name__}")
    name, aliases, kind, rank, spec = (entry.get(k) for k in ("name", "aliases", "type", "rank", "conv"))
    if not isinstance(name, str) or not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise DataFormatError(f"plan layer {index} needs a 'name' string and an 'aliases' list, got {entry!r}")
    if kind not in LAYER_TYPES:
        raise DataFormatError(f"plan layer {name!r} has type {kind!r}; known types: {sorted(LAYER_TYPES)}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1 or not isinstance(spec, dict):
        raise DataFormatError(f"plan layer {name!r} needs a positive int 'rank' and a 'conv' object, got {entry!r}")
    return name, aliases, LAYER_TYPES[kind], rank, spec


def _source_conv(model: nn.Module, name: str, kind: type[nn.Module], spec: dict) -> nn.Module:
    try:
        conv = model.get_submodule(name)
    except AttributeError:
        raise ArgumentError(f"plan layer {name!r} is not a module of {type(model).__name__}") from None
    wanted = nn.Conv1d if kind is SeparableConv1d else nn.Conv2d
    if not isinstance(conv, wanted):
        raise ArgumentError(f"plan layer {name!r} replaces a torch.nn.{wanted.__name__}, but the model has a "
                            f"{type(conv).__name__} there (apply a plan to the original, unconverted model)")
    if _conv_spec(conv) != spec:
        raise ShapeError(f"plan layer {name!r} was made for a conv {spec}, the model's is {_conv_spec(conv)}")
    return conv


def _check_rank(name: str, conv: nn.Module, kind: type[nn.Module], rank: int) -> None:
    if kind is SpatiallySeparableConv2d:
        top = conv.groups * min(conv.in_channels // conv.groups * conv.kernel_size[0],
                                conv.out_channels // conv.groups * conv.kernel_size[1])
        ok = rank % conv.groups == 0 and rank <= top
    else:
        ok = rank <= min(conv.out_channels // conv.groups, math.prod(conv.kernel_size))
    if not ok:
        raise DataFormatError(f"plan layer {name!r}: rank {rank} is not a valid {kind.__name__} rank for {conv}")


def apply_plan(model: nn.Module, plan: object, *, inplace: bool = False) -> nn.Module:
    """Replace the convs that ``plan`` lists by separable layers of the planned class and rank.

    Args:
        model: the original architecture (weights do not matter: load the converted ``state_dict`` afterwards).
        plan: ``report.plan``, a report (:class:`~sepconv.convert.ConversionReport` or its dict) or the path of
            the JSON file ``sepconv convert`` writes next to the converted weights.
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The model with the converted architecture (train/eval mode, device and dtype of each conv kept).

    Raises:
        DataFormatError: a malformed plan or an impossible rank.
        ArgumentError: a planned layer that is missing or not a standard conv in ``model``.
        ShapeError: a planned conv whose channels, kernel or groups differ from the model's.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    entries = [_check_entry(entry, i) for i, entry in enumerate(load_plan(plan)["layers"])]
    target = model if inplace else copy.deepcopy(model)
    for name, aliases, kind, rank, spec in entries:
        conv = _source_conv(target, name, kind, spec)
        _check_rank(name, conv, kind, rank)
        layer = build_layer(conv, kind, rank)
        for where in [name, *aliases]:
            _replace(target, where, conv, layer)
    return target


def _replace(model: nn.Module, name: str, conv: nn.Module, layer: nn.Module) -> None:
    try:
        found = model.get_submodule(name)
    except AttributeError:
        found = None
    if found is not conv:
        raise ArgumentError(f"plan alias {name!r} is not the same conv as the layer it belongs to in "
                            f"{type(model).__name__}")
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, layer)
