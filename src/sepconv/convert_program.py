"""Convert the convolutions of a ``torch.export`` program (``.pt2``) with :func:`sepconv.convert`.

An exported program holds no ``nn.Conv2d`` modules: its convolutions are graph calls such as
``aten.conv2d.default(x, weight, bias, stride, padding, dilation, groups)`` whose weight is a parameter or a
constant. :func:`convert_program` takes ``program.module()`` (an ``fx.GraphModule``), turns every such call
(conv1d/2d/3d, and non-transposed ``aten.convolution``) whose weight (and bias) is an attribute into a call of an
``nn.Conv{1,2,3}d`` sub-module holding the *same* tensors (named after the weight: ``features.0.weight`` gives
module ``features.0``, as in the original ``nn.Module``), runs :func:`sepconv.convert` on that module, with
example inputs built from the program's input specs, so allocation and report are exactly those of the eager
model, and exports the result again with the same example inputs.

Limits: the program's user inputs must be tensors of static shape (a program exported with dynamic shapes is
refused rather than silently specialised); the converted program is exported with ``strict=False``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)).eval()
    >>> program = torch.export.export(model, (torch.randn(1, 3, 8, 8),))
    >>> new_program, report = convert_program(program, "depthwise", budget=0.5)
    >>> report.macs_after <= 0.5 * report.macs_before, [r.method for r in report.layers]
    (True, ['kept', 'depthwise'])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import fx, nn

from .convert import ConversionReport, convert
from .errors import ArgumentError, UnsupportedConfigError

__all__ = ["convert_program", "example_inputs_of", "modularize_convs"]

_CONVS = {
    torch.ops.aten.conv1d.default: 1, torch.ops.aten.conv1d.padding: 1,
    torch.ops.aten.conv2d.default: 2, torch.ops.aten.conv2d.padding: 2,
    torch.ops.aten.conv3d.default: 3, torch.ops.aten.conv3d.padding: 3,
    torch.ops.aten.convolution.default: 0,  # dims from the weight; transposed ones are left alone
}
_MODULES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _attr(root: nn.Module, target: str) -> object:
    value: object = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _arguments(node: fx.Node) -> dict | None:
    from torch.fx.operator_schemas import normalize_function

    pair = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    return None if pair is None else dict(pair.kwargs)


def _replaceable_holder(root: nn.Module, path: str, used: set[str]) -> bool:
    """True when the module at ``path`` holds exactly the tensors ``used`` and nothing else."""
    try:
        holder = root.get_submodule(path)
    except AttributeError:
        return False
    own = set(holder._parameters) | set(holder._buffers)
    return type(holder) is nn.Module and not holder._modules and own == used


def modularize_convs(gm: fx.GraphModule) -> list[str]:
    """Turn the graph's conv calls with attribute weights into calls of ``nn.Conv{1,2,3}d`` sub-modules, in place.

    The new modules hold the graph's own weight and bias tensors (no copy) and the call's geometry (stride,
    padding ints or ``'same'``/``'valid'``, dilation, groups). A module is named after its weight's holder
    (``layer1.0.conv1`` for ``layer1.0.conv1.weight``) when that holder keeps nothing else, else ``conv_<node>``.

    Args:
        gm: a ``torch.fx.GraphModule``, e.g. ``torch.export.ExportedProgram.module()``.

    Returns:
        The names of the new sub-modules, in graph order.
    """
    names: list[str] = []
    made: dict[tuple, str] = {}  # (weight, bias, geometry) -> module name: a conv called twice stays one module
    for node in list(gm.graph.nodes):
        found = _conv_call(gm, node)
        if found is None:
            continue
        kwargs, weight_node, bias_node, conv = found
        key = (weight_node.target, None if bias_node is None else bias_node.target, conv.stride, conv.padding,
               conv.dilation, conv.groups)
        if key not in made:
            made[key] = _install(gm, conv, node.name, weight_node, bias_node)
        _call_module(gm, node, made[key], kwargs["input"], (weight_node, bias_node))
        names.append(made[key])
    gm.recompile()
    return names


def _conv_call(gm: fx.GraphModule, node: fx.Node) -> tuple[dict, fx.Node, fx.Node | None, nn.Module] | None:
    """``(arguments, weight node, bias node, equivalent conv module)`` of a convertible conv call, else ``None``."""
    if node.op != "call_function" or node.target not in _CONVS:
        return None
    kwargs = _arguments(node)
    weight_node, bias_node = (kwargs or {}).get("weight"), (kwargs or {}).get("bias")
    if kwargs is None or not isinstance(weight_node, fx.Node) or weight_node.op != "get_attr":
        return None
    if bias_node is not None and (not isinstance(bias_node, fx.Node) or bias_node.op != "get_attr"):
        return None
    if node.target is torch.ops.aten.convolution.default and (kwargs["transposed"] or any(kwargs["output_padding"])):
        return None
    weight = _attr(gm, weight_node.target)
    bias = None if bias_node is None else _attr(gm, bias_node.target)
    if not isinstance(weight, torch.Tensor) or (bias is not None and not isinstance(bias, torch.Tensor)):
        return None
    dims = _CONVS[node.target] or weight.dim() - 2
    if dims not in _MODULES or weight.dim() != dims + 2:
        return None
    return kwargs, weight_node, bias_node, _conv_module(kwargs, weight, bias, dims)


def _conv_module(kwargs: dict, weight: torch.Tensor, bias: torch.Tensor | None, dims: int) -> nn.Module:
    """An ``nn.Conv{dims}d`` with the call's geometry holding ``weight`` and ``bias`` themselves (no copy)."""
    groups = int(kwargs.get("groups", 1))
    padding = kwargs.get("padding", 0)
    padding = padding if isinstance(padding, str) else tuple(int(p) for p in padding)
    if isinstance(padding, tuple) and len(padding) == 1:
        padding = padding * dims
    stride = tuple(kwargs.get("stride", (1,) * dims)) or (1,)
    dilation = tuple(kwargs.get("dilation", (1,) * dims)) or (1,)
    conv = _MODULES[dims](weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), stride=stride,
                          padding=padding, dilation=dilation, groups=groups, bias=bias is not None, device="meta")
    conv.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        conv.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, requires_grad=False)
    return conv


def _install(gm: fx.GraphModule, conv: nn.Module, call: str, weight_node: fx.Node, bias_node: fx.Node | None) -> str:
    """Put ``conv`` in ``gm`` in place of its weight's holder when that holder keeps nothing else; its name."""
    holder, _, leaf = weight_node.target.rpartition(".")
    used = {leaf} | ({bias_node.target.rpartition(".")[2]} if bias_node is not None else set())
    same_holder = bias_node is None or bias_node.target.rpartition(".")[0] == holder
    if holder and leaf == "weight" and same_holder and _replaceable_holder(gm, holder, used):
        parent, _, child = holder.rpartition(".")
        setattr(gm.get_submodule(parent), child, conv)
        return holder
    name = f"conv_{call}"
    gm.add_submodule(name, conv)
    return name


def _call_module(gm: fx.GraphModule, node: fx.Node, name: str, source: object, attrs: tuple) -> None:
    """Replace the conv call ``node`` by ``name(source)``; drop the weight/bias reads left without users."""
    with gm.graph.inserting_before(node):
        call = gm.graph.call_module(name, (source,))
    call.meta.update(node.meta)
    node.replace_all_uses_with(call)
    gm.graph.erase_node(node)
    for attr_node in attrs:
        if attr_node is not None and not attr_node.users:
            gm.graph.erase_node(attr_node)


def example_inputs_of(program: torch.export.ExportedProgram, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random example inputs matching the program's user inputs (float: normal, others: zeros).

    Raises:
        UnsupportedConfigError: a user input that is not a tensor, or a dynamic (symbolic) dimension.
    """
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for name in program.graph_signature.user_inputs:
        value = placeholders[name].meta.get("val") if name in placeholders else None
        if not isinstance(value, torch.Tensor):
            raise UnsupportedConfigError(f"program input {name!r} is {type(value).__name__}, not a tensor: only "
                                         "tensor inputs can be regenerated for re-export")
        if not all(isinstance(d, int) for d in value.shape):
            raise UnsupportedConfigError(f"program input {name!r} has dynamic shape {tuple(value.shape)}: export "
                                         "the model with static shapes to convert it")
        shape = tuple(int(d) for d in value.shape)
        if value.dtype.is_floating_point:
            inputs.append(torch.randn(shape, generator=generator).to(value.dtype))
        else:
            inputs.append(torch.zeros(shape, dtype=value.dtype))
    return tuple(inputs)


def _whole_batches(calibration: object, inputs: tuple) -> object:
    """A calibration tensor (or tuple of them) cut to a multiple of the program's static batch size."""
    if not isinstance(calibration, (torch.Tensor, tuple)) or not inputs or not inputs[0].dim():
        return calibration
    tensors = (calibration,) if isinstance(calibration, torch.Tensor) else calibration
    batch = inputs[0].shape[0]
    if not all(isinstance(t, torch.Tensor) and t.dim() for t in tensors):
        return calibration  # sepconv.convert explains what is wrong
    keep = tensors[0].shape[0] // batch * batch
    if keep == 0:
        raise ArgumentError(f"calibration has {tensors[0].shape[0]} inputs, fewer than the program's static batch "
                            f"size {batch}")
    cut = tuple(t[:keep] for t in tensors)
    return cut[0] if isinstance(calibration, torch.Tensor) else cut


def convert_program(
    program: torch.export.ExportedProgram,
    method: str = "depthwise",
    *,
    budget: float | None = None,
    rank: int | None = None,
    energy: float | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    seed: int = 0,
    calibration: object = None,
    refit: str | None = None,
    calibration_images: int | str = "auto",
) -> tuple[torch.export.ExportedProgram, ConversionReport]:
    """Convert an exported program's convs as :func:`sepconv.convert` would, and export the result again.

    Args:
        program: a ``torch.export.ExportedProgram`` with static-shape tensor inputs.
        method, budget, rank, energy, include, exclude: as in :func:`sepconv.convert` (module names are the weights'
            holders, e.g. ``features.0``).
        seed: seed of the random example inputs (MACs per forward pass, measured output errors, re-export).
        calibration, refit, calibration_images: as in :func:`sepconv.convert`: the program's user inputs, along
            dim 0. A program
            takes only its own static batch size ``B``: a calibration tensor (or tuple) is cut into batches of
            ``B`` (the last ``N mod B`` samples are left out); an iterable must yield batches of ``B``.

    Returns:
        ``(new_program, report)``.

    Raises:
        ArgumentError: not an ``ExportedProgram``, or as :func:`sepconv.convert`.
        UnsupportedConfigError: dynamic shapes or non-tensor inputs.
    """
    if not isinstance(program, torch.export.ExportedProgram):
        raise ArgumentError(f"program must be a torch.export.ExportedProgram, got {type(program).__name__}")
    inputs = example_inputs_of(program, seed)
    gm = program.module()
    modularize_convs(gm)
    with warnings.catch_warnings():
        # torch's own pytree code (deep-copying the exported module's codegen) uses a deprecated LeafSpec check
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        new_module, report = convert(gm, method, budget=budget, rank=rank, energy=energy, include=include,
                                     exclude=exclude, example_inputs=inputs,
                                     calibration=_whole_batches(calibration, inputs), refit=refit,
                                     calibration_images=calibration_images,
                                     batch_size=inputs[0].shape[0] if inputs and inputs[0].dim() else 1)
        return torch.export.export(new_module, inputs, strict=False), report
