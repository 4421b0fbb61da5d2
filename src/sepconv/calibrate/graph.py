"""A forward pass that stops at any node of the traced graph and continues from there later.

:func:`trace` gives the ``torch.fx`` graph of a model (``None`` when it does not trace: data-dependent control
flow, unsupported calls); the chosen modules stay single ``call_module`` nodes. A :class:`Cursor` runs that graph
node by node for one batch on a given root module, holding only the *live* values (computed and still needed by
a later node), so it can stop before or after any node, be continued, copied or measured. Running the graph of the
original model on a converted copy (same module names, some modules replaced) gives the converted model's pass.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)).eval()
    >>> graph = trace(model, [model[2]])
    >>> x = torch.randn(1, 1, 8, 8)
    >>> cursor = Cursor(graph, model, (x,))
    >>> cursor.advance(graph.index["2"])  # stop before the second conv
    >>> cursor.argument(graph.index["2"]).shape  # what it is about to receive
    torch.Size([1, 2, 6, 6])
    >>> cursor.advance(len(graph.nodes))
    >>> bool(torch.equal(cursor.result, model(x)))
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = ["Cursor", "Graph", "trace"]


@dataclass
class Graph:
    """A traced forward pass: ``nodes`` in execution order, ``index`` of every ``call_module`` node by target name
    (only modules called once), and ``last_use`` (the last node index that reads each node's value)."""

    nodes: list[fx.Node]
    index: dict[str, int]
    last_use: dict[fx.Node, int]


class _Tracer(fx.Tracer):
    """The default tracer, with ``leaves`` (and every sepconv layer) kept as single ``call_module`` nodes."""

    def __init__(self, leaves: Iterable[nn.Module]) -> None:
        super().__init__()
        self.leaves = {id(m) for m in leaves}

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (id(m) in self.leaves or type(m).__module__.startswith("sepconv.")
                or super().is_leaf_module(m, qualname))


def trace(model: nn.Module, leaves: Iterable[nn.Module] = ()) -> Graph | None:
    """The graph of ``model.forward`` with ``leaves`` as call_module nodes, or ``None`` if it does not trace or
    has forward hooks that the graph would skip (on the model or a module traced through, or global ones)."""
    try:
        graph = _Tracer(leaves).trace(model)
    except Exception:  # any tracing failure means: use the hook-based passes instead
        return None
    nodes = list(graph.nodes)
    called = {str(node.target) for node in nodes if node.op == "call_module"}
    if _global_hooks() or any(name not in called and (m._forward_hooks or m._forward_pre_hooks)
                              for name, m in model.named_modules()):
        return None
    last_use: dict[fx.Node, int] = {}
    calls: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for used in node.all_input_nodes:
            last_use[used] = i
        if node.op == "call_module":
            calls.setdefault(str(node.target), []).append(i)
    return Graph(nodes, {name: found[0] for name, found in calls.items() if len(found) == 1}, last_use)


def _global_hooks() -> bool:
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks)


def _attribute(root: nn.Module, path: str) -> object:
    value: object = root
    for part in path.split("."):
        value = getattr(value, part)
    return value


class Cursor:
    """One batch's pass through ``graph`` on ``root``, at node ``position`` (nodes before it are computed).

    Args:
        graph: from :func:`trace`.
        root: the module whose submodules and attributes the nodes name (the traced model or a converted copy).
        inputs: the batch, one tensor per placeholder.

    Attributes:
        position: index of the next node to compute.
        env: the live values, by node.
        result: what the output node returned, once reached.
    """

    def __init__(self, graph: Graph, root: nn.Module, inputs: tuple) -> None:
        self.graph, self.root, self.inputs = graph, root, inputs
        self.position, self.placeholders = 0, 0
        self.env: dict[fx.Node, object] = {}
        self.result: object = None

    def advance(self, stop: int) -> None:
        """Compute the nodes ``position .. stop - 1`` (without autograd), dropping values no longer needed."""
        nodes, last_use = self.graph.nodes, self.graph.last_use
        with torch.no_grad():
            for i in range(self.position, stop):
                node = nodes[i]
                for dead in [n for n in self.env if n not in last_use]:  # kept only while it was the last node
                    del self.env[dead]
                self.env[node] = self._run(node)
                for used in node.all_input_nodes:
                    if last_use.get(used) == i:
                        del self.env[used]
        self.position = max(self.position, stop)

    def _run(self, node: fx.Node) -> object:
        if node.op == "placeholder":
            self.placeholders += 1
            return self.inputs[self.placeholders - 1] if self.placeholders <= len(self.inputs) else node.args[0]
        args = fx.node.map_arg(node.args, self.env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.env.__getitem__)
        if node.op == "get_attr":
            return _attribute(self.root, str(node.target))
        if node.op == "call_function":
            return node.target(*args, **kwargs)  # type: ignore[operator]
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        if node.op == "call_module":
            return self.root.get_submodule(str(node.target))(*args, **kwargs)
        self.result = args[0]  # output
        return self.result

    def argument(self, index: int) -> torch.Tensor:
        """The first argument of node ``index`` (its input), once the cursor has reached it."""
        return self.env[self.graph.nodes[index].args[0]]  # type: ignore[index,return-value]

    def output(self, index: int) -> torch.Tensor:
        """The value of node ``index``, once computed (and while still live)."""
        return self.env[self.graph.nodes[index]]  # type: ignore[return-value]

    def copy(self) -> Cursor:
        """An independent cursor at the same node: its tensors are cloned (later in-place ops leave this one)."""
        other = Cursor(self.graph, self.root, self.inputs)
        other.position, other.placeholders, other.result = self.position, self.placeholders, self.result
        other.env = {n: v.clone() if isinstance(v, torch.Tensor) and n.op != "get_attr" else v
                     for n, v in self.env.items()}
        return other

    def nbytes(self) -> int:
        """Bytes of the live activations held (attributes such as parameters are not counted)."""
        return sum(v.numel() * v.element_size() for n, v in self.env.items()
                   if isinstance(v, torch.Tensor) and n.op != "get_attr")
