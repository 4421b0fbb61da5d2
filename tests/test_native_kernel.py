"""The native CPU kernel (issue 13): equal to the PyTorch composition on random geometries at every vector width,
and a clean fallback where it cannot be built or is turned off."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

import sepconv
from conftest import force_cpu_path
from sepconv import backends
from sepconv.backends import native
from sepconv.backends.native import dense as native_dense

WIDTHS = ["native", "native-wide", "native-avx2", "native-generic"]


def random_layer(rng: random.Random) -> tuple[sepconv.SeparableConv2d, torch.Tensor]:
    cin = rng.choice([1, 3, 5, 8, 16, 17, 33, 40])
    kernel = (rng.choice([1, 2, 3, 5]), rng.choice([1, 3, 4, 7]))
    stride = (rng.choice([1, 2, 3]), rng.choice([1, 2]))
    dilation = (rng.choice([1, 2]), rng.choice([1, 3]))
    padding = rng.choice(["same", "valid", 0, 1, (2, 1)]) if stride == (1, 1) else rng.choice(["same", "valid", 1])
    layer = sepconv.SeparableConv2d(
        cin, rng.choice([1, 7, 16, 31, 33, 64]), kernel, stride=stride, padding=padding, dilation=dilation,
        depth_multiplier=rng.choice([1, 1, 2, 3]), bias=rng.random() < 0.7, depthwise_bias=rng.random() < 0.5,
        norm=rng.choice([None, "batch"]), activation=rng.choice([None, "relu", "relu6"]),
        pointwise_norm=rng.choice([None, "batch"]), pointwise_activation=rng.choice([None, "relu", "relu6"]))
    for module in layer.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(-2, 2)
                module.bias.uniform_(-1, 1)
    size = [n * d * (k - 1) + rng.randint(1, 12) for n, k, d in zip((1, 1), kernel, dilation)]
    x = torch.randn(rng.choice([1, 1, 2, 3]), cin, *size)
    if rng.random() < 0.3:
        x = x.transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous strides
    elif rng.random() < 0.3:
        x = x.contiguous(memory_format=torch.channels_last)
    return layer.eval(), x


def assert_native_is_plain(layer: nn.Module, x: torch.Tensor) -> None:
    """``layer(x)`` runs through the native kernel and equals the plain PyTorch composition."""
    with torch.inference_mode():
        assert backends.choose(layer, x) == "native", backends.explain(layer, x)
        fast = layer(x)
        with sepconv.set_backend("torch"):
            reference = layer(x)
    assert fast.shape == reference.shape
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", range(12))
def test_equals_the_pytorch_composition_on_random_geometries(width: str, seed: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    force_cpu_path(width, monkeypatch)
    assert_native_is_plain(*random_layer(random.Random(seed)))


@pytest.mark.parametrize("width", WIDTHS)
def test_every_channel_tail(width: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Channels past the last full vector run with half and quarter vectors, then scalars: every remainder."""
    force_cpu_path(width, monkeypatch)
    for cin in (1, 2, 4, 7, 8, 12, 13, 20, 24, 28, 31, 44):
        layer = sepconv.SeparableConv2d(cin, 9, 3, padding=1, activation="relu").eval()
        assert_native_is_plain(layer, torch.randn(2, cin, 7, 11))


@pytest.mark.parametrize("width", WIDTHS)
def test_three_tap_rows_at_stride_one_and_two(width: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels 3 taps wide without horizontal dilation run their interior pixels through a sliding window over each
    tap row (stride 1 and 2; AVX2 and baseline widths): every kernel height, vertical stride and dilation, the
    image's top and bottom rows (fewer tap rows), padding that leaves no interior column, channel tails."""
    force_cpu_path(width, monkeypatch)
    for (kh, sh, sw, dh, padding, cin, size) in [(3, 1, 1, 1, 1, 13, (6, 13)), (3, 2, 2, 1, 1, 24, (9, 17)),
                                                 (1, 1, 2, 1, (0, 1), 40, (5, 12)), (5, 3, 1, 2, "same", 8, (11, 9)),
                                                 (3, 1, 2, 1, "valid", 17, (4, 11)), (3, 1, 1, 1, (1, 4), 16, (5, 3))]:
        layer = sepconv.SeparableConv2d(cin, 10, (kh, 3), stride=(sh, sw), padding=padding, dilation=(dh, 1),
                                        activation="relu").eval()
        assert_native_is_plain(layer, torch.randn(2, cin, *size))


@pytest.mark.parametrize("width", WIDTHS)
def test_depth_multipliers(width: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output channel k reads input channel k // m: vectors of outputs with shuffled input lanes, then scalars."""
    force_cpu_path(width, monkeypatch)
    for cin, mult in [(1, 2), (3, 5), (5, 3), (7, 6), (16, 2), (13, 4), (64, 5)]:
        layer = sepconv.SeparableConv2d(cin, 11, 3, padding="same", stride=(1, 2), depth_multiplier=mult,
                                        activation="relu6", depthwise_bias=True).eval()
        assert_native_is_plain(layer, torch.randn(2, cin, 9, 8))


@pytest.mark.parametrize("width", WIDTHS)
def test_large_channel_counts_and_batch_one(width: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MobileNet-like shapes: many tiles, channel counts with vector tails, the split by output channels (2
    threads from 512 KiB of pointwise weights, 1 thread from 2 MiB: 1030 x 520 floats)."""
    force_cpu_path(width, monkeypatch)
    cases = [(32, 64, 23, 1), (130, 250, 9, 2), (515, 300, 4, 1), (1030, 520, 3, 1)]
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            for cin, cout, size, stride in cases:
                layer = sepconv.SeparableConv2d(cin, cout, 3, stride=stride, padding="same", activation="relu6",
                                                pointwise_activation="relu").eval()
                x = torch.randn(1, cin, size, size)
                with torch.no_grad():
                    torch.testing.assert_close(layer(x), _plain(layer, x), rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(1)


def _plain(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with sepconv.set_backend("torch"):
        return layer(x)


def test_direct_calls_equal_the_registered_operators_and_the_profiler_sees_them() -> None:
    """sepconv calls the kernel's functions directly (no dispatcher parsing); they are the torch.ops operators'
    functions, and torch.profiler still names each call."""
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    layer = sepconv.optimize(nn.Sequential(sepconv.SeparableConv2d(8, 16, 3, padding=1)))[0]
    x = torch.randn(2, 8, 9, 9)
    with torch.inference_mode():
        layer(x)
        prepared = native.plan(layer, x)
        args = (x, prepared.dw_weight, prepared.dw_bias, prepared.pw_packed, prepared.pw_bias, prepared.geometry,
                prepared.act_mid, prepared.act_out, prepared.width, prepared.tile, None)
        torch.testing.assert_close(native.build.calls().separable(*args), torch.ops.sepconv_native.separable(*args))
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            layer(x)
    assert "sepconv_native::separable" in {event.name for event in profile.events()}


@pytest.mark.parametrize(("n", "grain"), [(100, 1), (1000, 7), (5, 3), (1, 1)])
def test_work_split_hands_out_every_chunk_once_and_slow_threads_get_robbed(n: int, grain: int) -> None:
    """The kernels' split (dynamic_for): each thread runs its static share, then steals from the back of the
    others'; every index is handed out exactly once, and a thread slowed down runs fewer chunks."""
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        counts, chunks = native.build.calls().dynamic_for_coverage(n, grain, 0)
        assert counts == [1] * n and sum(chunks) == -(-n // grain)
        if n >= 100:
            counts, chunks = native.build.calls().dynamic_for_coverage(n, grain, 2000)  # thread 0: 2 ms a chunk
            assert counts == [1] * n and chunks[1] > chunks[0] and chunks[1] > -(-n // grain) // 2
    finally:
        torch.set_num_threads(threads)


def test_the_kernels_release_the_gil_while_they_run() -> None:
    """Another Python thread runs while a kernel call is in progress (a server answering two requests at once):
    the direct calls release the GIL as torch.ops does. With a switch interval far longer than the test, a thread
    holding the GIL keeps it until it blocks: this thread then counts only while the kernel has let it go."""
    import threading

    if native.load_error() is not None:
        pytest.skip(native.load_error())
    layer = sepconv.optimize(nn.Sequential(sepconv.SeparableConv2d(256, 256, 3, padding=1)))[0]
    x = torch.randn(8, 256, 28, 28)  # a call of tens of milliseconds
    inside, done, steps = threading.Event(), threading.Event(), [0]
    interval = sys.getswitchinterval()
    with torch.inference_mode():
        prepared = native.plan(layer, x)

        def work() -> None:
            inside.set()
            for _ in range(3):
                native.run(prepared, x)
            done.set()

        try:
            sys.setswitchinterval(100.0)
            worker = threading.Thread(target=work)
            worker.start()
            inside.wait()
            while not done.is_set():
                steps[0] += 1
                time.sleep(0)  # lets the worker take the GIL back when its call returns
            worker.join()
        finally:
            sys.setswitchinterval(interval)
    assert steps[0] > 100  # with the GIL held through each call, this thread would not run until the worker ends


def test_training_and_autograd_use_the_pytorch_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    force_cpu_path("native", monkeypatch)
    layer, x = random_layer(random.Random(3))
    layer.train()
    assert backends.choose(layer, x) != "native"
    out = layer(x)
    out.sum().backward()
    assert layer.depthwise.weight.grad is not None


def test_unbatched_input_runs_native(monkeypatch: pytest.MonkeyPatch) -> None:
    force_cpu_path("native", monkeypatch)
    layer = sepconv.SeparableConv2d(4, 6, 3, padding=1).eval()
    x = torch.randn(4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _plain(layer, x), rtol=1e-5, atol=1e-5)


def test_a_dropout_in_training_mode_is_applied_after_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    force_cpu_path("native", monkeypatch)
    layer = sepconv.SeparableConv2d(4, 6, 3, padding=1, dropout=0.5, pointwise_activation="relu").eval()
    layer.drop.train()
    assert not native.fuses_post_steps(layer)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        out = layer(x)
    assert (out == 0).float().mean() > 0.3  # dropout ran


def test_turned_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEPCONV_NATIVE", "0")
    layer = sepconv.SeparableConv2d(4, 6, 3).eval()
    with torch.no_grad():
        explanation = backends.explain(layer, torch.randn(1, 4, 8, 8))
    assert explanation.path == "onednn"
    assert "SEPCONV_NATIVE=0" in explanation.reasons["native"]


def test_an_unknown_vector_width_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEPCONV_NATIVE_ISA", "avx9000")
    with pytest.raises(sepconv.ArgumentError, match="SEPCONV_NATIVE_ISA must be one of generic, avx2, avx512"):
        native.isa()


_NO_COMPILER = textwrap.dedent("""
    import torch, sepconv
    from sepconv import backends
    layer = sepconv.SeparableConv2d(8, 16, 3, padding=1, norm="batch", activation="relu").eval()
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        out = layer(x)
        path = backends.choose(layer, x)
    with sepconv.set_backend("torch"):
        ref = layer(x)
    print(path, torch.allclose(out, ref, atol=1e-5))
""")


def test_a_machine_without_a_compiler_falls_back_with_one_line(tmp_path) -> None:
    """No C++ compiler (CXX points nowhere, PATH has no c++) and an empty build cache: oneDNN runs instead."""
    env = {**os.environ, "SEPCONV_NATIVE_DIR": str(tmp_path), "CXX": str(tmp_path / "no-such-compiler"),
           "PATH": os.path.dirname(sys.executable)}
    done = subprocess.run([sys.executable, "-c", _NO_COMPILER], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["onednn", "True"]
    notice = [line for line in done.stderr.splitlines() if "native kernel" in line]
    assert len(notice) == 1 and "could not be built" in notice[0] and "Traceback" not in done.stderr


def random_conv(rng: random.Random) -> tuple[nn.Module, torch.Tensor]:
    """A standard conv the native dense path takes (patch of at most MAX_PATCH values) and an input for it."""
    cin = rng.choice([1, 2, 3, 4, 7, 16, 31])
    kernel = (rng.choice([1, 2, 3, 5]), rng.choice([1, 3, 4, 7]))
    while cin * kernel[0] * kernel[1] > native_dense.MAX_PATCH:
        cin = max(1, cin // 2)
        kernel = (kernel[0], max(1, kernel[1] - 2))
    stride, dilation = (rng.choice([1, 2, 3]), rng.choice([1, 2])), (rng.choice([1, 2]), rng.choice([1, 3]))
    cout = rng.choice([1, 5, 16, 33, 64, 70])
    if rng.random() < 0.4:  # TF 'same' at any stride: asymmetric padding
        conv = sepconv.PaddedConv2d(cin, cout, kernel, stride, "same", dilation, bias=rng.random() < 0.7)
    else:
        padding = rng.choice([0, 1, (2, 0), (0, 3)])
        conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, bias=rng.random() < 0.7)
    size = [d * (k - 1) + rng.randint(1, 16) for k, d in zip(kernel, dilation)]
    x = torch.randn(rng.choice([1, 2, 3]), cin, *size)
    layout = rng.random()
    if layout < 0.3:
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout < 0.5:
        x = x.repeat_interleave(2, dim=3)[..., ::2]  # strided columns
    elif layout < 0.6:
        x = x[:1].expand(3, -1, -1, -1)  # a zero batch stride
    return conv.eval(), x


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", range(16))
def test_dense_convs_equal_torch_on_random_geometries(width: str, seed: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The implicit-im2col GEMM of standard convs with few channels (strides, dilation, TF 'same', kernels
    larger than the image's interior, output channels off the panel width, every input layout), with each
    folded activation."""
    force_cpu_path(width, monkeypatch)
    rng = random.Random(seed)
    conv, x = random_conv(rng)
    act = rng.choice([None, nn.ReLU(), nn.ReLU6()])
    with torch.inference_mode():
        assert native_dense.unsupported_reason(conv, x) is None
        out = native_dense.run(native_dense.plan(conv, x, act), x)
        reference = conv(x) if act is None else act(conv(x))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)


def test_dense_declines_what_it_does_not_run() -> None:
    x = torch.randn(1, 4, 9, 9)
    assert "grouped" in native_dense.unsupported_reason(nn.Conv2d(4, 4, 3, groups=2), x)
    assert "above" in native_dense.unsupported_reason(nn.Conv2d(4, 8, 9), x)  # 324 values


@pytest.mark.parametrize("width", WIDTHS)
def test_max_pool_equals_torch_with_nan_and_infinities(width: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Max pooling: every channel tail, windows cut by the padding, NaN anywhere in a window wins (as torch's),
    infinities kept; the result is exactly torch's."""
    import torch.nn.functional as F

    from sepconv.backends.native import pool

    force_cpu_path(width, monkeypatch)
    rng = torch.Generator().manual_seed(0)
    for channels in (1, 3, 4, 8, 13, 16, 17, 33, 128):
        for size, kernel, stride, pad in [((9, 9), 3, 2, 1), ((8, 11), 3, 2, 0), ((7, 7), 2, 1, 1), ((5, 6), 3, 1, 1)]:
            x = torch.randn(2, channels, *size, generator=rng)
            x[0, channels // 2, 1, 2] = float("nan")
            x[1, 0, -1, -1] = float("nan")
            x[1, -1, 2, 3] = float("inf")
            x[0, 0, 0, 0] = float("-inf")
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                out = pool.max_pool2d(x, (kernel, kernel), (stride, stride), [(pad, pad), (pad, pad)])
                expected = F.max_pool2d(x, kernel, stride, padding=pad)
            assert out is not None and out.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


def test_max_pool_declines_what_it_does_not_run() -> None:
    from sepconv.backends.native import pool

    x = torch.randn(1, 4, 9, 9)
    args = ((3, 3), (2, 2), [(1, 1), (1, 1)])
    assert pool.max_pool2d(x, *args) is None  # (B, C, H, W)-contiguous: torch's own call and layout
    cl = x.contiguous(memory_format=torch.channels_last)
    assert pool.max_pool2d(cl.double(), *args) is None
    assert pool.max_pool2d(cl.clone().requires_grad_(), *args) is None
    with sepconv.set_backend("torch"):
        assert pool.max_pool2d(cl, *args) is None


def test_xception_pooling_takes_the_native_kernel_and_equals_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from sepconv.models.xception import _MaxPoolSame

    force_cpu_path("native", monkeypatch)
    for size in ((147, 147), (74, 75), (19, 19)):
        x = torch.randn(1, 16, *size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = _MaxPoolSame()(x)
            with sepconv.set_backend("torch"):
                expected = _MaxPoolSame()(x)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out, expected)


def test_the_wide_gemm_is_chosen_where_the_output_channels_fill_its_panels(monkeypatch: pytest.MonkeyPatch) -> None:
    """AVX-512 has a second GEMM with wider weight panels (64 columns); a layer takes it when its output channels
    pad to at most MAX_PADDING times the default panels' columns, and the plan packs for it. AVX2 has one GEMM
    (its 4 x 3 variant was slower on real AVX2 hardware)."""
    if native.load_error() is not None:
        pytest.skip(native.load_error())
    calls = native.build.calls()
    assert [calls.panel_width(v) for v in (0, 1, 2, 3)] == [8, 16, 32, 64]
    # the last panel is packed half as wide where the rest fits
    assert [calls.packed_columns(3, n) for n in (64, 728, 740, 1, 0)] == [64, 736, 768, 32, 0]
    variant = native.kernel.gemm_variant
    assert [variant(2, n) for n in (64, 128, 120, 728, 33, 31)] == [3, 3, 3, 2, 2, 2]  # 728: a half-width last panel
    assert [variant(1, n) for n in (256, 512, 48, 64, 128, 16)] == [1] * 6
    assert variant(0, 64) == 0
    if native.isa() < 2:
        return
    force_cpu_path("native", monkeypatch)
    layer = sepconv.SeparableConv2d(8, 256, 3, padding=1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.inference_mode():
        prepared = native.plan(layer, x)
    assert prepared.width == 3 and prepared.pw_packed.numel() == 8 * 256 and prepared.tile % 6 == 0
    assert_native_is_plain(layer, x)


def test_tiles_are_whole_register_blocks_balanced_over_the_threads() -> None:
    """Rows per tile: a multiple of the GEMM's rows, at most the byte budget of depthwise output (a larger one
    where the pointwise weights are large, so that fewer tiles stream them), the busiest thread within BALANCE of
    an even share."""
    tile_of = native.kernel._tile
    rng = random.Random(0)
    for _ in range(300):
        pixels, depth, n = rng.randint(1, 30000), rng.choice([3, 32, 128, 512, 728, 1024]), rng.choice([16, 728, 2048])
        threads, rows = rng.choice([1, 2, 3, 8]), rng.choice([4, 6, 12, 14])
        tile = tile_of(pixels, depth, n, threads, rows)
        assert tile % rows == 0 and tile >= rows
        budget = (native.kernel.BIG_TILE_BYTES if 4 * depth * n > native.kernel.BIG_WEIGHT_BYTES
                  else native.kernel.TILE_BYTES)
        assert tile == rows or tile <= min(256, budget // (4 * depth))
        tiles = -(-pixels // tile)
        busiest = min(pixels, -(-tiles // threads) * tile)
        assert tile == rows or busiest <= native.kernel.BALANCE * -(-pixels // threads)
    assert tile_of(361, 728, 728, 1, 14) > 4 * tile_of(361, 728, 256, 1, 14)  # Xception's middle flow: big weights


def test_forcing_the_wide_gemm_reaches_its_half_width_last_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forced '-wide' paths put every layer on the wide GEMM, so that the random geometries reach its half-width
    last panel (72 output channels: one panel of 64, one of 32 for the 8 left) although no layer takes it unforced."""
    force_cpu_path("native-wide", monkeypatch)
    layer = sepconv.SeparableConv2d(8, 72, 3, padding=1).eval()
    x = torch.randn(2, 8, 7, 9)
    with torch.inference_mode():
        prepared = native.plan(layer, x)
    assert prepared.width == native.kernel.WIDE.get(native.isa(), native.isa())
    assert_native_is_plain(layer, x)


def _innermost_fma_loops(disassembly: str) -> dict[str, list[list[str]]]:
    """Per GEMM function of an ``objdump -d`` listing, the bodies of its innermost loops that multiply-add (a
    backward jump with no other jump between its target and itself)."""
    import re

    loops: dict[str, list[list[str]]] = {}
    for function in re.split(r"\n(?=[0-9a-f]+ <)", disassembly):
        name = re.search(r"::((?:gemm|conv_line|tail_rows)_\w+)", function.splitlines()[0])
        if name is None:
            continue
        code = [(int(m.group(1), 16), m.group(2)) for m in re.finditer(r"^\s*([0-9a-f]+):\s*(.*)$", function, re.M)]
        for end, (address, text) in enumerate(code):
            jump = re.match(r"j\w+\s+([0-9a-f]+)", text)
            if jump is None or int(jump.group(1), 16) >= address:
                continue
            body = [t for a, t in code[:end + 1] if a >= int(jump.group(1), 16)]
            if any(re.match(r"j\w+\s", t) for t in body[:-1]) or not any("vfmadd" in t for t in body):
                continue
            loops.setdefault(name.group(1), []).append(body)
    return loops


def test_the_gemm_loops_keep_their_accumulators_in_registers() -> None:
    """No innermost multiply-add loop of the built kernel reads or writes a vector on the stack: an accumulator
    spilled there is loaded and stored every k (GCC did so twice while the GEMM was generalized: 2-6% per layer)."""
    import re
    import shutil

    if native.load_error() is not None or shutil.which("objdump") is None:
        pytest.skip("needs the native kernel and objdump")
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", native.build.calls().__file__],
                             capture_output=True, text=True, check=True).stdout
    loops = _innermost_fma_loops(listing)
    assert {"gemm_avx512", "gemm_avx512_wide", "gemm_avx2"} <= set(loops)
    stack = re.compile(r"v\w+\s.*[xyz]mm\d+.*\(%r[sb]p\)|v\w+\s+-?0x[0-9a-f]+\(%r[sb]p\)")
    spilled = {name: line for name, bodies in loops.items() for body in bodies for line in body if stack.search(line)}
    assert not spilled
