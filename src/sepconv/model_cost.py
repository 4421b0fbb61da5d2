""":func:`count`: parameters, multiply-adds, output shapes and memory of any model, per module, like torchinfo.

Multiply-adds come from PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add), which
sees the operators that actually run: ``F.conv2d`` or ``x @ w`` inside a module's ``forward`` count as that
module's own work, as do convolutions, linear layers, matrix products and attention in any module. The counting
pass runs the plain PyTorch path of sepconv's layers (dispatch modes are never given private kernels).

Example:
    >>> import torch, sepconv
    >>> from sepconv.model_cost import count
    >>> cost = count(sepconv.SeparableConv2d(3, 256, 5, bias=False), (1, 3, 12, 12))
    >>> [(layer.name, layer.params, layer.macs) for layer in cost.layers]
    [('depthwise', 75, 4800), ('pointwise', 768, 49152)]
    >>> cost.params, cost.macs
    (843, 53952)
    >>> print(cost)  # [totals] for a container; Identity placeholders are not shown
    layer (type)                    output shape  params  multiply-adds   share
    SeparableConv2d                 1x256x8x8      [843]       [53,952]  100.0%
    ├─ depthwise (DepthwiseConv2d)  1x3x8x8           75          4,800    8.9%
    └─ pointwise (Conv2d)           1x256x8x8        768         49,152   91.1%
    params: 843 (trainable 843, non-trainable 0)
    multiply-adds: 53,952 for 1 input of 1x3x12x12 (2 FLOPs each: 107,904 FLOPs)
    memory: weights 3.3 KiB, activations 64.8 KiB, inputs 1.7 KiB
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ArgumentError, ShapeError

__all__ = ["LayerCost", "ModelCost", "count"]

Inputs = Sequence[int] | torch.Tensor | Sequence[Sequence[int] | torch.Tensor]


@dataclass(frozen=True)
class LayerCost:
    """One module of a counted model (every module the forward pass called, in call order).

    Attributes:
        name: the module's qualified name in the model (``''`` for the model itself).
        kind: the module's class name.
        params: parameters owned directly by the module.
        macs: multiply-adds of the module's own computation (its submodules' excluded), whole input.
        output_shape: the module's output shape (the first tensor of a tuple output; ``()`` for none).
        depth: nesting depth (0 for the model itself).
        trainable: of ``params``, those with ``requires_grad``.
        total_params: parameters of the module and its submodules.
        total_macs: multiply-adds of the module and its submodules.
    """

    name: str
    kind: str
    params: int
    macs: int
    output_shape: tuple[int, ...]
    depth: int = 0
    trainable: int = 0
    total_params: int = 0
    total_macs: int = 0


@dataclass(frozen=True)
class ModelCost:
    """What :func:`count` measured; ``print`` shows the per-module table and the totals.

    Attributes:
        layers: modules with their own parameters or multiply-adds, in call order (the leaves that do the work).
        params: all unique parameters of the model; ``trainable`` of them require grad.
        macs: multiply-adds of one forward pass over the inputs (batch included).
        input_shape: the first input's shape; ``input_shapes`` all of them.
        modules: every module called, parents before children (``layers`` is a subset).
        param_bytes: memory of the parameters and buffers.
        activation_bytes: memory of the outputs of the leaf modules (what a training step keeps).
        input_bytes: memory of the inputs.
    """

    layers: list[LayerCost] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    input_shape: tuple[int, ...] = ()
    modules: list[LayerCost] = field(default_factory=list)
    trainable: int = 0
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    param_bytes: int = 0
    activation_bytes: int = 0
    input_bytes: int = 0

    def as_dict(self) -> dict:
        """JSON-friendly dict (lists instead of tuples)."""
        return asdict(self)

    def table_rows(self) -> list[tuple[str, str, str, str, str]]:
        """Rows of the per-module table: layer (type) with tree marks, output shape, params, multiply-adds, share.

        Containers show their totals (their submodules included) in brackets when they do no work themselves.
        """
        shown = [m for m in self.modules if m.kind != "Identity"]  # placeholders (no norm, no activation)
        rows = []
        for i, module in enumerate(shown):
            label = f"{module.name.rsplit('.', 1)[-1]} ({module.kind})" if module.depth else module.kind
            rows.append((_tree_prefix(shown, i) + label, "x".join(map(str, module.output_shape)) or "-",
                         *_own_or_total(module, self.macs)))
        return rows

    def totals(self) -> list[str]:
        """The lines under the table: parameters with the trainable split, multiply-adds and FLOPs, memory."""
        shapes = ", ".join("x".join(map(str, s)) for s in self.input_shapes)
        inputs = f"{len(self.input_shapes)} input{'s' if len(self.input_shapes) != 1 else ''} of {shapes}"
        return [
            f"params: {self.params:,} (trainable {self.trainable:,}, non-trainable {self.params - self.trainable:,})",
            f"multiply-adds: {self.macs:,} for {inputs} (2 FLOPs each: {2 * self.macs:,} FLOPs)",
            f"memory: weights {_bytes(self.param_bytes)}, activations {_bytes(self.activation_bytes)}, "
            f"inputs {_bytes(self.input_bytes)}",
        ]

    def __str__(self) -> str:
        rows = [("layer (type)", "output shape", "params", "multiply-adds", "share"), *self.table_rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                 .rstrip() for row in rows]
        return "\n".join([*lines, *self.totals()])


def _own_or_total(module: LayerCost, model_macs: int) -> tuple[str, str, str]:
    """Params, multiply-adds and share of a row: its own, or ``[its subtree's]`` for a container doing no work."""
    has_children = module.total_params != module.params or module.total_macs != module.macs
    if has_children and not module.params and not module.macs:
        params, macs, work = f"[{module.total_params:,}]", f"[{module.total_macs:,}]", module.total_macs
    else:
        params, macs, work = f"{module.params:,}", f"{module.macs:,}", module.macs
    return params, macs, f"{100 * work / model_macs:.1f}%" if model_macs else "-"


def _tree_prefix(modules: list[LayerCost], i: int) -> str:
    """``├─``/``└─`` marks (with ``│`` for open ancestors) for the module ``i`` of a pre-order list."""
    depth = modules[i].depth
    if depth == 0:
        return ""

    def last_at(j: int, level: int) -> bool:  # no later sibling at ``level`` before the parent's subtree ends
        for later in modules[j + 1:]:
            if later.depth < level:
                return True
            if later.depth == level:
                return False
        return True

    marks = []
    for level in range(1, depth):  # the ancestor at each level: is its subtree still open?
        ancestor = max(j for j in range(i) if modules[j].depth == level)
        marks.append("   " if last_at(ancestor, level) else "│  ")
    return "".join(marks) + ("└─ " if last_at(i, depth) else "├─ ")


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _example_inputs(inputs: object, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Zeros of each shape (or the tensors given, moved to the model's device) as the forward's arguments."""
    def is_shape(value: object) -> bool:
        return (isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))

    if isinstance(inputs, torch.Tensor) or is_shape(inputs):
        items: Sequence[object] = (inputs,)
    elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)) and len(inputs) > 0:
        items = inputs
    else:
        raise ArgumentError("input_shape must be a shape such as (1, 3, 224, 224), a tensor, or a tuple of them (one "
                            f"per forward argument), got {inputs!r}"[:300])
    tensors = []
    for item in items:
        if isinstance(item, torch.Tensor):
            tensors.append(item.to(device))
        elif is_shape(item) and min(item) > 0:  # type: ignore[arg-type]
            tensors.append(torch.zeros(tuple(item), device=device, dtype=dtype))  # type: ignore[arg-type]
        else:
            raise ArgumentError(f"input_shape: each input must be a shape of positive ints or a tensor, got {item!r}"
                                [:300])
    return tuple(tensors)


def count(model: nn.Module, input_shape: Inputs) -> ModelCost:
    """Count parameters, multiply-adds, output shapes and memory of ``model`` with one forward pass.

    Multiply-adds are ``torch.utils.flop_counter``'s FLOPs / 2, attributed to the module whose ``forward`` ran the
    operator (convolutions, linear layers, matrix products, attention): ``F.conv2d`` called in a custom
    ``forward`` counts, bias additions, norms and activations do not. The pass runs under ``torch.no_grad`` in the
    model's current mode (left unchanged) on its device and dtype.

    Args:
        model: any ``nn.Module``.
        input_shape: the input's full shape, batch included (``(1, 3, 224, 224)``, zeros are fed), a tensor, or a
            tuple of shapes and tensors for a forward with several arguments (``((1, 3, 32, 32), (1, 10))``).

    Returns:
        :class:`ModelCost` with per-module rows and totals; ``print(cost)`` shows the table.

    Raises:
        ArgumentError: not a module, or inputs that are neither shapes nor tensors.
        ShapeError: the inputs do not fit the model.

    Example:
        >>> import torch.nn.functional as F
        >>> class Net(nn.Module):  # a conv written with F.conv2d in forward is counted
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.weight = nn.Parameter(torch.zeros(8, 3, 3, 3))
        ...         self.head = nn.Linear(8, 2)
        ...     def forward(self, x, scale):
        ...         return self.head(F.conv2d(x, self.weight).mean((2, 3)) * scale)
        >>> cost = count(Net(), ((1, 3, 10, 10), (1, 8)))
        >>> [(m.name, m.macs) for m in cost.layers], cost.macs
        ([('', 13824), ('head', 16)], 13840)
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    inputs = _example_inputs(input_shape, device, dtype)
    names = {module: name for name, module in model.named_modules()}
    counter = FlopCounterMode(display=False)
    try:
        with _calls(model) as (called, outputs), torch.no_grad(), counter:
            model(*inputs)
    except (RuntimeError, IndexError, TypeError, ValueError) as err:  # torch's shape errors, deep in the model
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        hint = ""
        if len(inputs) == 1 and inputs[0].dim() == 3:  # (C, H, W) given where the model wants a batch
            hint = f"; shapes include the batch dimension, e.g. {(1, *inputs[0].shape)}"
        raise ShapeError(f"input_shape {shapes} does not fit the model: {str(err).splitlines()[0]}{hint}") from err
    return _model_cost(model, names, called, outputs, counter, inputs)


@contextlib.contextmanager
def _calls(model: nn.Module) -> Iterator[tuple[list[nn.Module], dict[nn.Module, tuple]]]:
    """Record, while inside, the modules called (parents before children) and each one's first output shape and
    bytes (the first tensor of a tuple output)."""
    called: list[nn.Module] = []
    outputs: dict[nn.Module, tuple] = {}

    def before(module: nn.Module, _inputs: tuple) -> None:
        if module not in outputs and module not in called:
            called.append(module)

    def after(module: nn.Module, _inputs: tuple, output: object) -> None:
        items = output if isinstance(output, (tuple, list)) else (output,)
        first = next((o for o in items if isinstance(o, torch.Tensor)), None)
        outputs.setdefault(module, ((), 0) if first is None else (tuple(first.shape),
                                                                  first.numel() * first.element_size()))

    handles = [handle for m in model.modules()
               for handle in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        yield called, outputs
    finally:
        for handle in handles:
            handle.remove()


def _model_cost(model: nn.Module, names: dict[nn.Module, str], called: list[nn.Module], outputs: dict[nn.Module, tuple],
                counter: FlopCounterMode, inputs: tuple[torch.Tensor, ...]) -> ModelCost:
    """Assemble the rows: own work = the counter's inclusive FLOPs minus the called children's, halved."""
    flops = {key: sum(ops.values()) for key, ops in counter.get_flop_counts().items()}
    root = type(model).__name__

    def inclusive(module: nn.Module) -> int:
        name = names[module]
        return flops.get(f"{root}.{name}" if name else root, 0) // 2

    rows = []
    for module in called:
        name = names.get(module)
        if name is None:  # a module called by the model but not registered in it: its work counts for the caller
            continue
        own_params = list(module.parameters(recurse=False))
        children = [c for c in module.children() if c in outputs]
        total = inclusive(module)
        shape, _ = outputs.get(module, ((), 0))
        rows.append(LayerCost(
            name=name, kind=type(module).__name__, params=sum(p.numel() for p in own_params),
            macs=max(total - sum(inclusive(c) for c in children), 0), output_shape=shape,
            depth=0 if not name else name.count(".") + 1,
            trainable=sum(p.numel() for p in own_params if p.requires_grad),
            total_params=sum(p.numel() for p in module.parameters()), total_macs=total))
    unique = {id(p): p for p in model.parameters()}.values()
    leaves = [m for m in called if m in outputs and not any(c in outputs for c in m.children())
              and not isinstance(m, nn.Identity)]
    return ModelCost(
        layers=[r for r in rows if r.params or r.macs], params=sum(p.numel() for p in unique),
        macs=inclusive(model), input_shape=tuple(inputs[0].shape), modules=rows,
        trainable=sum(p.numel() for p in unique if p.requires_grad),
        input_shapes=[tuple(x.shape) for x in inputs],
        param_bytes=sum(t.numel() * t.element_size() for t in (*unique, *model.buffers())),
        activation_bytes=sum(outputs[m][1] for m in leaves),
        input_bytes=sum(x.numel() * x.element_size() for x in inputs))
