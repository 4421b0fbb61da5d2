"""sepconv.optimize (issue 13): one call for fast inference, same function as the eager model, and the per-call
shortcuts it enables (tickets, reused output memory) invisible except in time."""

from __future__ import annotations

import os
import threading

import pytest
import torch
from torch import nn

import sepconv
from sepconv.backends import native, tickets


def block(post: nn.Module | None = None) -> nn.Sequential:
    layers = [sepconv.SeparableConv2d(6, 12, 3, padding="same", norm="batch", activation="relu"), nn.BatchNorm2d(12)]
    return nn.Sequential(*layers, *([post] if post is not None else []))


def randomize_norms(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 2)
                module.bias.uniform_(-1, 1)
    return model.eval()


@pytest.mark.parametrize("activation", [nn.ReLU, nn.ReLU6])
def test_folds_the_following_activation_and_leaves_the_model_alone(activation: type) -> None:
    model = randomize_norms(block(activation()))
    fast = sepconv.optimize(model)
    assert isinstance(fast[0].pointwise_act, activation) and isinstance(fast[2], nn.Identity)
    assert model[0].pointwise_act is None and isinstance(model[1], nn.BatchNorm2d)  # the original is untouched
    x = torch.randn(2, 6, 11, 11) * 3
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)


def test_does_not_fold_what_it_must_not() -> None:
    model = nn.Sequential(sepconv.SeparableConv2d(4, 4, 3, pointwise_activation="relu6"), nn.ReLU(),
                          sepconv.SeparableConv2d(4, 4, 3), nn.Conv2d(4, 4, 1), nn.ReLU(),
                          sepconv.SeparableConv2d(4, 4, 3), nn.GELU()).eval()
    fast = sepconv.optimize(model)
    assert isinstance(fast[0].pointwise_act, nn.ReLU6) and isinstance(fast[1], nn.ReLU)  # already has one
    assert fast[2].pointwise_act is None  # a conv in between, which takes the ReLU instead
    assert isinstance(fast[3].activation, nn.ReLU) and isinstance(fast[4], nn.Identity)
    assert fast[5].pointwise_act is None and isinstance(fast[6], nn.GELU)  # not a fusable activation
    x = torch.randn(1, 4, 20, 20)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", ["vh", "hv"])
@pytest.mark.parametrize("bias", [True, False])
def test_a_spatially_separable_layer_takes_the_following_norm_and_activation(order: str, bias: bool) -> None:
    """fuse folds the BatchNorm after a SpatiallySeparableConv2d into its second step (the one with the bias),
    optimize moves the ReLU6 after it into that step's activation; the function is unchanged, NaN included."""
    model = randomize_norms(nn.Sequential(
        sepconv.SpatiallySeparableConv2d(5, 8, (3, 5), stride=2, padding=1, order=order, bias=bias),
        nn.BatchNorm2d(8), nn.ReLU6()))
    fast = sepconv.optimize(model)
    second = fast[0].horizontal if order == "vh" else fast[0].vertical
    assert isinstance(fast[1], nn.Identity) and isinstance(fast[2], nn.Identity)
    assert isinstance(second.activation, nn.ReLU6) and second.bias is not None
    assert isinstance(model[1], nn.BatchNorm2d) and not hasattr(model[0].horizontal, "activation")  # untouched
    x = 3 * torch.randn(2, 5, 13, 12)
    x[1, 2, 5:7, 5:7] = float("nan")
    with torch.inference_mode():
        reference = model(x)
        for _ in range(3):  # the later calls run the convs from their tickets
            torch.testing.assert_close(fast(x), reference, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert reference.isnan().any()


@pytest.mark.parametrize("name", ["mobilenet_v1", "small_cnn-depthwise", "small_cnn-spatial", "small_cnn-standard"])
def test_whole_models_compute_the_same_function(name: str) -> None:
    if name == "mobilenet_v1":
        model = sepconv.models.mobilenet_v1(width_mult=0.25, resolution=64, num_classes=10)
        x = torch.randn(2, 3, 64, 64)
    else:
        model, x = sepconv.models.small_cnn(conv=name.split("-")[1]), torch.randn(3, 1, 28, 28)
    model = randomize_norms(model)
    fast = sepconv.optimize(model)
    with torch.inference_mode():
        reference = model(x)
        for _ in range(3):  # the later calls run through the tickets and reused memory
            out = fast(x)
            assert (out - reference).abs().max() <= 1e-4 * reference.abs().max()


def test_optimize_inside_inference_mode_keeps_its_caches() -> None:
    """A copy made inside torch.inference_mode() (even of a model built there) holds normal tensors: its frozen
    layers keep their packs and tickets (inference tensors have no version counter; without them every call
    repacked the weights, 2.6x slower)."""
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    x = torch.randn(1, 16, 12, 12)
    with torch.inference_mode():
        model = nn.Sequential(sepconv.SeparableConv2d(16, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU()).eval()
        assert model[0].pointwise.weight.is_inference()
        fast = sepconv.optimize(model)
        assert not any(t.is_inference() for t in (*fast.parameters(), *fast.buffers()))
        reference = model(x)
        for _ in range(2):
            torch.testing.assert_close(fast(x), reference, rtol=1e-5, atol=1e-5)
        assert tickets.lookup(fast[0], x, "auto") is not None


def test_bad_model_is_a_clear_error() -> None:
    with pytest.raises(sepconv.ArgumentError, match=r"model must be a torch\.nn\.Module"):
        sepconv.optimize("mobilenet")


def big_layer() -> nn.Module:
    return sepconv.optimize(nn.Sequential(sepconv.SeparableConv2d(16, 64, 3, padding=1)))[0]  # output > 256 KiB


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_outputs_the_caller_keeps_are_never_overwritten(context) -> None:
    layer = big_layer()
    inputs = [torch.randn(2, 16, 40, 40) for _ in range(4)]
    with context():
        kept = [layer(x) for x in inputs]  # all held: each call must get its own memory
        view = layer(inputs[0])[0]  # only a view held
        array = layer(inputs[1]).numpy()  # only a numpy array held
        later = [layer(x) for x in inputs]
        with sepconv.set_backend("torch"):
            reference = [layer(x) for x in inputs]
    assert len({t.data_ptr() for t in kept}) == 4
    for out, again, ref in zip(kept, later, reference):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(again, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(view, reference[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(array), reference[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_memory_is_reused_once_the_caller_dropped_the_output(context) -> None:
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    layer = big_layer()
    x = torch.randn(2, 16, 40, 40)
    with context():
        first = layer(x)
        address = first.data_ptr()
        del first
        assert layer(x).data_ptr() == address


def test_threads_sharing_a_model_get_their_own_outputs() -> None:
    layer = big_layer()
    inputs = [torch.randn(2, 16, 40, 40) for _ in range(2)]
    with torch.inference_mode(), sepconv.set_backend("torch"):
        reference = [layer(x) for x in inputs]
    failures: list[str] = []

    def work(index: int) -> None:
        with torch.inference_mode():
            for _ in range(30):
                out = layer(inputs[index])
                if not torch.allclose(out, reference[index], rtol=1e-5, atol=1e-5):
                    failures.append(f"thread {index}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


@pytest.fixture(params=["native", "python"])
def ticket_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Tickets checked in one C++ call (where the native kernel is loaded) or in Python."""
    if request.param == "python":
        monkeypatch.setattr(tickets, "native_check", lambda *args: None)
    return request.param


def ticketed_layer() -> tuple[nn.Module, torch.Tensor]:
    """A frozen layer that ran once through the native kernel (so it holds a ticket), and its input."""
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    layer = big_layer()
    x = torch.randn(1, 16, 12, 12)
    with torch.inference_mode():
        layer(x)
    assert tickets._TICKETS.get(layer) is not None
    return layer, x


def test_tickets_follow_edits_shapes_backends_and_hooks(monkeypatch: pytest.MonkeyPatch, ticket_check: str) -> None:
    layer, x = ticketed_layer()
    assert (tickets._TICKETS[layer][0].check is None) == (ticket_check == "python")
    with torch.no_grad():
        layer.pointwise.weight.mul_(-1)  # autograd-visible edit: the layer's state changes
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), torch.nn.functional.conv2d(
            layer.depthwise(x), layer.pointwise.weight, layer.pointwise.bias), rtol=1e-5, atol=1e-5)
        assert layer(torch.randn(1, 16, 9, 9)).shape == (1, 64, 9, 9)  # another shape
    seen: list[int] = []
    handle = layer.pointwise.register_forward_hook(lambda *args: seen.append(1))
    with torch.inference_mode():
        layer(x)
    handle.remove()
    assert seen == [1]  # a hook registered after the ticket still sees its module run
    monkeypatch.setattr(native, "run", lambda *a: (_ for _ in ()).throw(AssertionError("native ran")))
    with torch.inference_mode(), sepconv.set_backend("torch"):
        layer(x)  # the ticket does not outlive a backend change
    monkeypatch.setenv("SEPCONV_NATIVE", "0")
    with torch.inference_mode():
        layer(x)  # nor turning the kernel off


def test_alternating_shapes_keep_a_ticket_each_and_an_edit_voids_them_all(ticket_check: str) -> None:
    layer, x = ticketed_layer()  # x's ticket is the first filed
    inputs = [x] + [torch.randn(*shape) for shape in [(2, 16, 12, 12), (1, 16, 7, 9), (3, 16, 5, 5), (1, 16, 6, 6)]]
    with torch.inference_mode():
        for inp in inputs[1:4]:
            layer(inp)
        for inp in inputs[:4]:  # each of PER_LAYER shapes has its own valid ticket, used in any order
            assert tickets.lookup(layer, inp, "auto") is not None
            layer(inp)
        layer(inputs[4])  # a fifth shape: the ticket filed first is forgotten
        assert tickets.lookup(layer, x, "auto") is None
        assert all(tickets.lookup(layer, inp, "auto") is not None for inp in inputs[1:])
    with torch.no_grad():
        layer.pointwise.weight.mul_(-1)
    with torch.inference_mode():
        assert all(tickets.lookup(layer, inp, "auto") is None for inp in inputs)
        for inp in inputs:  # the full path, with the edited weights
            torch.testing.assert_close(layer(inp), torch.nn.functional.conv2d(
                layer.depthwise(inp), layer.pointwise.weight, layer.pointwise.bias), rtol=1e-5, atol=1e-5)


def test_a_ticket_neither_keeps_its_layer_alive_nor_survives_a_replaced_submodule(ticket_check: str) -> None:
    import gc
    import weakref

    layer, x = ticketed_layer()
    with torch.inference_mode():
        layer.pointwise = torch.nn.Conv2d(16, 64, 1)  # a new sub-module: the ticket must not run the old weights
        torch.testing.assert_close(layer(x), layer.pointwise(layer.depthwise(x)), rtol=1e-5, atol=1e-5)
    alive = weakref.ref(layer)
    del layer
    gc.collect()
    assert alive() is None


CHANGES = {
    "nothing": lambda layer: None,
    "training flag": lambda layer: layer.act.train(),
    "hook": lambda layer: layer.pointwise.register_forward_hook(lambda *args: None),
    "pre-hook": lambda layer: layer.register_forward_pre_hook(lambda *args: None),
    "replaced module": lambda layer: setattr(layer, "act", nn.ReLU()),
    "new parameter": lambda layer: setattr(layer.depthwise, "bias", nn.Parameter(torch.zeros(16))),
    "new buffer": lambda layer: layer.pointwise.register_buffer("extra", torch.zeros(1)),
    "in-place edit": lambda layer: layer.pointwise.weight.add_(1),
    "data assignment": lambda layer: setattr(layer.pointwise.weight, "data", torch.zeros_like(layer.pointwise.weight)),
    "setting": lambda layer: os.environ.__setitem__("SEPCONV_NATIVE_ISA", "generic"),
    "threads": lambda layer: torch.set_num_threads(torch.get_num_threads() + 1),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_native_check_agrees_with_the_python_one(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    layer, x = ticketed_layer()
    ticket = tickets._TICKETS[layer][0]
    if ticket.check is None:
        pytest.skip("the native kernel is not loaded")
    monkeypatch.delenv("SEPCONV_NATIVE_ISA", raising=False)
    threads = torch.get_num_threads()
    try:
        with torch.no_grad():
            CHANGES[change](layer)
        native_verdict = ticket.valid_for(layer, x, "auto")
        check, ticket.check = ticket.check, None
        assert native_verdict == ticket.valid_for(layer, x, "auto") == (change == "nothing")
        ticket.check = check
        assert not ticket.valid_for(layer, torch.randn(2, 16, 12, 12), "auto")  # another shape
        assert not ticket.valid_for(layer, x.double(), "auto")
        assert not ticket.valid_for(layer, x, "torch")
    finally:
        torch.set_num_threads(threads)
        os.environ.pop("SEPCONV_NATIVE_ISA", None)
