"""``sepconv cost``: parameters and multiply-adds, the seed documents' table, any geometry, or a model."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..choices import CONV_KINDS
from ..errors import ArgumentError
from ._table import print_seed_table, print_table

if TYPE_CHECKING:
    from ..cost import ModelCost

# sepconv.cost (and torch) load in the functions that count: the help and argument errors answer at once.

HELP = "count parameters and multiply-adds: the seeds' table, any conv geometry (--in/--out/--kernel) or a model"


def _ints(text: str, name: str, minimum: int = 1) -> int | tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ArgumentError(f"--{name} must be an int or two ints as HxW, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) < minimum:
        raise ArgumentError(f"--{name} must be one or two ints >= {minimum} (e.g. 3 or 3x5), got {text!r}")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _padding(text: str) -> str | int | tuple[int, int]:
    return text.lower() if text.lower() in ("same", "valid") else _ints(text, "padding", minimum=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    geometry = parser.add_argument_group("conv geometry (give --in, --out and --kernel)")
    geometry.add_argument("--in", dest="in_channels", type=int, help="input channels C")
    geometry.add_argument("--out", dest="out_channels", type=int, help="output channels N")
    geometry.add_argument("--kernel", help="kernel size, k or KHxKW")
    geometry.add_argument("--size", help="input size, S or HxW (default: counts per output position)")
    geometry.add_argument("--stride", default="1", help="stride, s or SHxSW (default 1)")
    geometry.add_argument("--padding", default="0", help="padding: int, HxW, 'same' or 'valid' (default 0)")
    geometry.add_argument("--dilation", default="1", help="dilation (default 1)")
    geometry.add_argument("--depth-multiplier", type=int, default=1, help="depthwise multiplier m (default 1)")
    geometry.add_argument("--mid-channels", type=int, help="spatially separable mid channels (default min(C, N))")
    geometry.add_argument("--bias", action="store_true", help="count biases")
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="count a model per layer: a sepconv model name (mobilenet_v1, xception, "
                                       "small_cnn, ...) or MODULE:FACTORY from your own code (runs it)")
    model.add_argument("--model-args", default=None, metavar="JSON",
                       help="keyword arguments of a MODULE:FACTORY --model, as a JSON object")
    model.add_argument("--input-shape", default=None, metavar="B,C,H,W",
                       help="input shape to count on (default: the model's own; needed for models without one)")
    model.add_argument("--conv", default=None, choices=CONV_KINDS,
                       help="the model's convs (default: the model's own; spatial: small_cnn only)")
    model.add_argument("--width-mult", type=float, default=None,
                       help="width multiplier (mobilenet_v1 only; default: the model's, 1.0)")
    model.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _geometry(args: argparse.Namespace) -> tuple[list[tuple[str, object]], dict]:
    from ..cost import depthwise_cost, separable_cost, spatial_cost, standard_cost

    missing = [f"--{n}" for n in ("in", "out", "kernel")
               if getattr(args, {"in": "in_channels", "out": "out_channels"}.get(n, n)) is None]
    if missing:
        raise ArgumentError(f"a conv geometry needs --in, --out and --kernel; missing {', '.join(missing)}")
    flags = {"in_channels": "--in", "out_channels": "--out", "depth_multiplier": "--depth-multiplier",
             "mid_channels": "--mid-channels"}
    for name, flag in flags.items():
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ArgumentError(f"{flag} must be >= 1, got {value}")
    size = None if args.size is None else _ints(args.size, "size")
    common = dict(kernel_size=_ints(args.kernel, "kernel"), size=size,
                  stride=_ints(args.stride, "stride"), padding=_padding(args.padding),
                  dilation=_ints(args.dilation, "dilation"))
    c, n = args.in_channels, args.out_channels
    variants = [
        ("standard", standard_cost(c, n, bias=args.bias, **common)),
        ("depthwise separable", separable_cost(c, n, depth_multiplier=args.depth_multiplier, bias=args.bias,
                                               **common)),
        ("  depthwise step", depthwise_cost(c, depth_multiplier=args.depth_multiplier, **common)),
        ("spatially separable", spatial_cost(c, n, mid_channels=args.mid_channels, bias=args.bias, **common)),
    ]
    return variants, {"in": c, "out": n, **common}


def run(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _run_model(args)
    if args.in_channels is None and args.out_channels is None and args.kernel is None:
        from ..cost import seed_rows

        rows = seed_rows()
        if args.json:
            print(json.dumps({"seeds": [{"example": r.example, "standard": r.standard, "separable": r.separable,
                                         "ratio": r.ratio} for r in rows]}, indent=2))
        else:
            print_seed_table(rows, "The seed articles' examples (formulas; `sepconv seeds` counts real layers)")
        return 0
    variants, geometry = _geometry(args)
    base = variants[0][1]
    if args.json:
        print(json.dumps({"geometry": geometry, "per_position": args.size is None,
                          "variants": {name.strip(): {"params": v.params, "macs": v.macs,
                                                      "out_size": list(v.out_size),
                                                      "macs_ratio": base.macs / v.macs}
                                       for name, v in variants}}, indent=2))
        return 0
    what = "multiply-adds per output position" if args.size is None else "multiply-adds per image"
    print_table(f"C={geometry['in']} -> N={geometry['out']}, kernel {geometry['kernel_size']} ({what})",
                ("variant", "params", "multiply-adds", "output", "fewer MACs than standard"),
                [(name, v.params, v.macs, "x".join(map(str, v.out_size)), f"{base.macs / v.macs:.2f}x")
                 for name, v in variants])
    return 0


def _user_model(args: argparse.Namespace) -> tuple[object, tuple[int, ...]]:
    """``--model MODULE:FACTORY``: the user's model and its ``--input-shape`` (or its own ``input_size``)."""
    from ._model_spec import build_model, input_shape, model_args

    for flag, value in (("--conv", args.conv), ("--width-mult", args.width_mult), ("--resolution", args.resolution)):
        if value is not None:
            raise ArgumentError(f"{flag} applies to sepconv's own models; pass your factory's arguments with "
                                "--model-args and the shape with --input-shape")
    model = build_model(args.model, model_args(args.model_args)).eval()
    return model, input_shape(args.input_shape, model, args.model)


def _run_model(args: argparse.Namespace) -> int:
    from ..cost import count
    from ..models import create_model

    if ":" in args.model:
        model, shape = _user_model(args)
        return _report(args, count(model, shape), shape[1:])
    if args.model_args is not None:
        raise ArgumentError("--model-args applies to a MODULE:FACTORY --model; sepconv's models take --conv, "
                            "--width-mult and --resolution")
    geometry = [flag for flag, value in (("--in", args.in_channels), ("--out", args.out_channels),
                                         ("--kernel", args.kernel), ("--size", args.size)) if value is not None]
    if geometry:
        raise ArgumentError(f"{geometry[0]} describes one conv and cannot be combined with --model")
    if args.width_mult is not None and not 0 < args.width_mult <= 16:
        raise ArgumentError(f"--width-mult must be in (0, 16], got {args.width_mult}")
    if args.resolution is not None and not 1 <= args.resolution <= 4096:
        raise ArgumentError(f"--resolution must be in [1, 4096], got {args.resolution}")
    given = {"conv": args.conv, "width_mult": args.width_mult, "resolution": args.resolution}
    try:  # an option the model does not take is refused, never silently ignored
        model = create_model(args.model, **{k: v for k, v in given.items() if v is not None}).eval()
    except ArgumentError as err:
        raise ArgumentError(str(err).replace(" takes no argument '", " takes no option '--").replace("_", "-")
                            if "takes no argument" in str(err) else str(err)) from None
    size = model.input_size if args.resolution is None else (model.input_size[0], args.resolution, args.resolution)
    if args.input_shape is not None:
        from ._model_spec import input_shape

        if args.resolution is not None:
            raise ArgumentError("give --resolution or --input-shape, not both")
        shape = input_shape(args.input_shape, model, args.model)
        return _report(args, count(model, shape), shape[1:])
    return _report(args, count(model, (1, *size)), size)


def _report(args: argparse.Namespace, cost: ModelCost, size: tuple[int, ...]) -> int:
    """Print the per-module table and the totals (or JSON) of ``count``'s result for ``--model``."""
    if args.json:
        print(json.dumps({"model": args.model, "conv": args.conv or "default", **cost.as_dict()}, indent=2))
        return 0
    convs = "" if ":" in args.model else f" ({args.conv or 'default convs'})"
    print_table(f"{args.model}{convs} on {'x'.join(map(str, size))}",
                ("layer (type)", "output shape", "params", "multiply-adds", "share"), cost.table_rows(),
                caption="\n".join(["[n]: a container's total, its submodules included", *cost.totals()]))
    return 0
