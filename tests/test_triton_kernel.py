"""The fused Triton kernel against the PyTorch composition.

On CPU the kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``, set per test by the ``interpret``
fixture; the kernel is jitted lazily per mode, so the order of imports does not matter). Shapes are tiny and
the block sizes forced to 16 so every tile kind (full, edge in M, N and K) occurs. The CUDA tests run only
where a GPU is present.
"""

from __future__ import annotations

import itertools
import re

import pytest
import torch
import torch.nn.functional as F

import sepconv.functional as SF
from sepconv.errors import SepConvError, UnsupportedConfigError

pytest.importorskip("triton", reason="triton is not installed (pip install 'sepconv[gpu]' or 'sepconv[test]')")

from conftest import rel_err
from sepconv.backends import triton as K

pytestmark = pytest.mark.triton
BLOCKS = (16, 16, 16)
ACT = {None: lambda t: t, "relu": F.relu, "relu6": F.relu6}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def make_case(c: int, n: int, k: tuple[int, int], mult: int, dtype=torch.float64, device="cpu") -> dict:
    g = torch.Generator().manual_seed(c * 1000 + n * 10 + k[0] + mult)
    t = {
        "dw": torch.randn(c * mult, 1, *k, generator=g),
        "pw": torch.randn(n, c * mult, 1, 1, generator=g) / (c * mult) ** 0.5,
        "b1": torch.randn(c * mult, generator=g),
        "b2": torch.randn(n, generator=g),
        "scale": torch.rand(c * mult, generator=g) + 0.5,
        "shift": torch.randn(c * mult, generator=g),
    }
    return {key: v.to(dtype=dtype, device=device) for key, v in t.items()}


def reference(x, p, stride, padding, dw_bias, affine, dw_act, pw_bias, act, mid_dtype=None):
    """PyTorch composition in float64 (optionally rounding the mid tensor like a two-kernel low-precision run)."""
    mid = SF.depthwise_conv2d(x.double(), p["dw"].double(), p["b1"].double() if dw_bias else None,
                              stride=stride, padding=padding)
    if affine:
        mid = mid * p["scale"].double().view(1, -1, 1, 1) + p["shift"].double().view(1, -1, 1, 1)
    mid = ACT[dw_act](mid)
    if mid_dtype is not None:
        mid = mid.to(mid_dtype).double()
    out = F.conv2d(mid, p["pw"].double(), p["b2"].double() if pw_bias else None)
    return ACT[act](out)


def run_fused(x, p, stride, padding, dw_bias, affine, dw_act, pw_bias, act, **kw):
    return K.fused_separable_conv2d(
        x, p["dw"], p["pw"], p["b1"] if dw_bias else None, p["b2"] if pw_bias else None, stride, padding,
        depthwise_scale=p["scale"] if affine else None, depthwise_shift=p["shift"] if affine else None,
        depthwise_activation=dw_act, activation=act, **kw,
    )


GRID = list(itertools.product((1, 3, 5, 7), (1, 2), (1, 2), ("same", 1)))


@pytest.mark.parametrize(("index", "case"), list(enumerate(GRID)), ids=[f"k{k}-s{s}-m{m}-p{p}" for k, s, m, p in GRID])
def test_fp32_matches_torch_over_grid(interpret, index: int, case: tuple) -> None:
    k, stride, mult, padding = case
    # bias / affine / activation choices cycle with the index so every combination occurs over the grid
    dw_bias, pw_bias, affine = bool(index & 1), bool(index & 2), bool(index & 4)
    dw_act, act = [None, "relu", "relu6"][index % 3], [None, "relu6", "relu"][(index // 3) % 3]
    c, n = (9, 19) if index % 2 else (5, 7)  # K = C*m up to 18 > BLOCK_K, N = 19 > BLOCK_N: edges in K and N
    p = make_case(c, n, (k, k), mult, torch.float32)
    x = torch.randn(2, c, 9, 7).to(memory_format=torch.channels_last)
    ref = reference(x, p, stride, padding, dw_bias, affine, dw_act, pw_bias, act)
    out = torch.full(tuple(ref.shape), float("nan")).to(memory_format=torch.channels_last)
    got = run_fused(x, p, stride, padding, dw_bias, affine, dw_act, pw_bias, act, out=out, block_sizes=BLOCKS)
    assert got is out
    assert not torch.isnan(out).any(), "some output elements were not written"
    assert rel_err(out.double(), ref) <= 1e-5


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "size"),
    [((3, 5), (1, 2), "same", (6, 11)), ((7, 1), (2, 1), (2, 0), (10, 5)), ((1, 3), (2, 2), (0, 3), (5, 4)),
     ((5, 5), 2, "valid", (12, 13)), ((3, 3), 2, "same", (1, 1))],
)
def test_fp32_anisotropic_geometry(interpret, kernel, stride, padding, size) -> None:
    p = make_case(6, 20, kernel, 2, torch.float32)
    x = torch.randn(3, 6, *size)  # plain NCHW strides work too
    ref = reference(x, p, stride, padding, True, True, "relu", True, None)
    out = torch.full(tuple(ref.shape), float("nan"))
    run_fused(x, p, stride, padding, True, True, "relu", True, None, out=out, block_sizes=BLOCKS)
    assert not torch.isnan(out).any()
    assert rel_err(out.double(), ref) <= 1e-5


def test_default_blocks_channels_last_output_and_unbatched(interpret) -> None:
    p = make_case(8, 24, (3, 3), 1, torch.float32)
    x = torch.randn(8, 12, 12)
    got = K.fused_separable_conv2d(x, p["dw"], p["pw"], None, p["b2"], 2, "same")
    ref = reference(x.unsqueeze(0), p, 2, "same", False, False, None, True, None).squeeze(0)
    assert got.shape == (24, 6, 6)
    assert got.unsqueeze(0).is_contiguous(memory_format=torch.channels_last)
    assert rel_err(got.double(), ref) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_in_interpreter(interpret, dtype: torch.dtype) -> None:
    p = make_case(9, 19, (3, 3), 2, dtype)
    x = torch.randn(2, 9, 7, 8, dtype=dtype).to(memory_format=torch.channels_last)
    ref = reference(x, p, 1, "same", True, False, "relu6", True, "relu", mid_dtype=dtype)
    out = torch.full(tuple(ref.shape), float("nan"), dtype=dtype)
    run_fused(x, p, 1, "same", True, False, "relu6", True, "relu", out=out, block_sizes=BLOCKS)
    assert out.dtype == dtype and not torch.isnan(out).any()
    assert rel_err(out.double(), ref) <= 1e-2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"dw": torch.randn(4, 1, 4, 4)}, "kernel size (4, 4) is not supported"),
        ({"dw": torch.randn(4, 1, 9, 9)}, "kernel size (9, 9) is not supported"),
        ({"dw": torch.randn(12, 1, 3, 3), "pw": torch.randn(6, 12, 1, 1)}, "depth multiplier 3"),
        ({"stride": 3}, "stride (3, 3) is not supported"),
        ({"dilation": 2}, "dilation 2 is not supported"),
        ({"groups": 2}, "groups=2 is not supported"),
        ({"padding_mode": "reflect"}, "padding_mode='reflect' is not supported"),
        ({"dtype": torch.float64}, "dtype torch.float64 is not supported"),
        ({"pw": torch.randn(6, 3, 1, 1)}, "does not fit 4 mid channels"),
        ({"x": torch.randn(1, 4, 2, 2), "dw": torch.randn(4, 1, 5, 5)}, "too small"),
        ({"x": torch.randn(4, 8)}, "only 2D inputs"),
    ],
)
def test_unsupported_configurations_are_reported(interpret, change: dict, reason: str) -> None:
    dtype = change.pop("dtype", torch.float32)
    args = {"x": torch.randn(1, 4, 8, 8), "dw": torch.randn(4, 1, 3, 3), "pw": torch.randn(6, 4, 1, 1)}
    args.update({k: v for k, v in change.items() if k in args})
    kw = {k: v for k, v in change.items() if k not in args}
    tensors = [args[k].to(dtype) for k in ("x", "dw", "pw")]
    got = K.unsupported_reason(*tensors, **kw)
    assert got is not None and reason in got
    if set(kw) <= {"stride"}:  # the options fused_separable_conv2d itself takes
        with pytest.raises(UnsupportedConfigError, match="fused separable conv: .*" + re.escape(reason)):
            K.fused_separable_conv2d(*tensors, **kw)


def test_cpu_without_interpreter_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    reason = K.unsupported_reason(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3), torch.randn(6, 4, 1, 1))
    assert reason == "device cpu is not supported (CUDA, or CPU with TRITON_INTERPRET=1)"


def test_bad_options_raise_typed_errors(interpret) -> None:
    x, dw, pw = torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3), torch.randn(6, 4, 1, 1)
    with pytest.raises(UnsupportedConfigError, match="activation must be one of"):
        K.fused_separable_conv2d(x, dw, pw, activation="gelu")
    with pytest.raises(UnsupportedConfigError, match="precision must be one of"):
        K.fused_separable_conv2d(x, dw, pw, precision="fp64")
    with pytest.raises(UnsupportedConfigError, match="out must be"):
        K.fused_separable_conv2d(x, dw, pw, out=torch.empty(1, 6, 8, 8))
    with pytest.raises(UnsupportedConfigError, match="block sizes"):
        K.fused_separable_conv2d(x, dw, pw, block_sizes=(16, 8, 16))
    with pytest.raises(SepConvError, match="padding must be"):
        K.fused_separable_conv2d(x, dw, pw, padding="full")


# --- on a CUDA device (the tolerances: 1e-5 fp32, 2e-3 tf32, 1e-2 bf16) ------------------------------


@cuda
@pytest.mark.parametrize(
    ("dtype", "precision", "tol"),
    [(torch.float32, "ieee", 1e-5), (torch.float32, "tf32", 2e-3), (torch.float16, "ieee", 1e-2),
     (torch.bfloat16, "ieee", 1e-2)],
)
@pytest.mark.parametrize(("k", "stride", "mult"), [(3, 1, 1), (3, 2, 1), (5, 2, 2), (7, 1, 2)])
def test_cuda_matches_torch(monkeypatch, dtype, precision, tol, k, stride, mult) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    p = make_case(96, 200, (k, k), mult, dtype, "cuda")
    x = torch.randn(5, 96, 29, 31, dtype=dtype, device="cuda").to(memory_format=torch.channels_last)
    mid_dtype = None if dtype == torch.float32 else dtype
    ref = reference(x, p, stride, "same", True, True, "relu6", True, "relu", mid_dtype=mid_dtype)
    out = torch.full(tuple(ref.shape), float("nan"), dtype=dtype, device="cuda")
    run_fused(x, p, stride, "same", True, True, "relu6", True, "relu", out=out, precision=precision)
    assert not torch.isnan(out).any()
    assert rel_err(out.double(), ref) <= tol


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy matmul
@pytest.mark.parametrize("act", [None, "relu", "relu6"])
def test_nan_and_inf_propagate_through_the_activations(interpret, act) -> None:
    """ReLU/ReLU6 written as max(x, 0) would turn NaN into 0; the kernel must propagate it as torch.relu does."""
    x = torch.randn(1, 4, 6, 6)
    x[0, 1, 2, 2] = float("nan")
    x[0, 2, 4, 4] = float("inf")
    dw, pw = torch.randn(4, 1, 3, 3), torch.randn(5, 4, 1, 1)
    out = K.fused_separable_conv2d(x, dw, pw, padding=1, depthwise_activation=act, activation=act)
    acts = {None: lambda t: t, "relu": torch.relu, "relu6": F.relu6}
    ref = acts[act](F.conv2d(acts[act](F.conv2d(x, dw, padding=1, groups=4)), pw))
    assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(out).any()
    assert torch.equal(torch.isinf(out), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert rel_err(out[finite], ref[finite]) < 1e-5


@pytest.mark.parametrize("config", K.CANDIDATES, ids=[str(c) for c in K.CANDIDATES])
def test_every_tuning_candidate_matches_torch(interpret, config) -> None:
    """Each configuration a tuning sweep may pick computes the same function (edge tiles in M, N and K)."""
    p = make_case(40, 70, (3, 3), 1, torch.float32)
    x = torch.randn(2, 40, 9, 11)
    ref = reference(x, p, 2, "same", True, True, "relu", True, "relu6")
    out = torch.full(tuple(ref.shape), float("nan"))
    run_fused(x, p, 2, "same", True, True, "relu", True, "relu6", out=out, block_sizes=config)
    assert rel_err(out.double(), ref) <= 1e-5


def test_tuned_table_holds_candidates_for_well_formed_keys() -> None:
    """The measured table (triton_configs.py) holds only candidate configurations under keys config_key makes."""
    from sepconv.backends.triton_configs import CONFIGS

    pattern = re.compile(r"^(fp32|fp16|bf16) k\d+x\d+ s\dx\d m[12] K\d+ N\d+ M\d+$")
    for key, config in CONFIGS.items():
        assert pattern.match(key), key
        assert tuple(config) in K.CANDIDATES, (key, config)
    unknown = K.config_key(torch.float16, (3, 3), (1, 1), 1, 24, 40, 100)
    assert unknown not in CONFIGS
    assert K.choose_config(unknown, 100, 40, 24, torch.float16) == K.default_config(100, 40, 24, torch.float16)


@pytest.mark.parametrize("limit", [K.INT32_LIMIT, 10], ids=["int32-offsets", "int64-offsets"])
def test_int32_and_int64_offsets_agree(interpret, monkeypatch, limit) -> None:
    """Offsets are int32 when every offset fits and int64 otherwise (forced here by a tiny limit); both compute
    the same function, on a non-contiguous input."""
    monkeypatch.setattr(K, "INT32_LIMIT", limit)
    p = make_case(9, 19, (3, 3), 2, torch.float32)
    x = torch.randn(3, 9, 12, 26).to(memory_format=torch.channels_last)[:, :, 1:, ::2]
    assert K._needs_int64(x.shape, x.stride()) == (limit == 10)
    ref = reference(x, p, 2, "same", True, True, "relu", True, None)
    out = torch.full(tuple(ref.shape), float("nan"))
    run_fused(x, p, 2, "same", True, True, "relu", True, None, out=out, block_sizes=BLOCKS)
    assert rel_err(out.double(), ref) <= 1e-5
