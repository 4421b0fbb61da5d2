"""``sepconv export``: write a model (sepconv's or the user's ``MODULE:FACTORY``) to ONNX, checked in ONNX Runtime."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..choices import CONV_KINDS
from ..errors import ArgumentError

if TYPE_CHECKING:
    from torch import nn

HELP = "export a model (a sepconv model name or MODULE:FACTORY) to ONNX and verify it in ONNX Runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a sepconv model name (mobilenet_v1, xception, small_cnn, ...) or "
                                      "MODULE:FACTORY from your own code (runs it)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--conv", default=None, choices=CONV_KINDS,
                        help="kind of the model's convs (default: the model's own; spatial: small_cnn only)")
    parser.add_argument("--width-mult", type=float, default=None,
                        help="width multiplier (mobilenet_v1 only; default: the model's, 1.0)")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    parser.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    parser.add_argument("--batch", type=int, default=None, help="batch size of the exported graph (default 1)")
    parser.add_argument("--model-args", default=None, metavar="JSON",
                        help="keyword arguments of a MODULE:FACTORY model, as a JSON object")
    parser.add_argument("--input-shape", default=None, metavar="B,C,H,W",
                        help="input shape of the exported graph (default: the model's own, batch --batch; needed "
                             "for models without one)")
    parser.add_argument("--fuse", action="store_true", help="fold BatchNorm first (sepconv.fuse)")
    parser.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")


def run(args: argparse.Namespace) -> int:
    from ..fusion import fuse
    from ..interop.onnx import export_onnx
    from ..models import create_model

    for flag, value in (("--num-classes", args.num_classes), ("--batch", args.batch),
                        ("--resolution", args.resolution)):
        if value is not None and value < 1:
            raise ArgumentError(f"{flag} must be >= 1, got {value}")
    if args.width_mult is not None and not 0 < args.width_mult <= 16:
        raise ArgumentError(f"--width-mult must be in (0, 16], got {args.width_mult}")
    if args.resolution is not None and args.resolution > 4096:
        raise ArgumentError(f"--resolution must be at most 4096, got {args.resolution}")
    given = {"conv": args.conv, "width_mult": args.width_mult, "num_classes": args.num_classes,
             "resolution": args.resolution}
    kwargs = {name: value for name, value in given.items() if value is not None}
    model = _user_model(args, kwargs) if ":" in args.model else _sepconv_model(args, kwargs, create_model)
    shape = _shape(args, model)
    if args.fuse:
        model = fuse(model, channels_last=False)
    diff = export_onnx(model, args.out, shape, check=not args.no_check)
    checked = "" if diff is None else f"; ONNX Runtime max |diff| = {diff:.2e}"
    print(f"wrote {args.out} ({args.model}, input {'x'.join(map(str, shape))}){checked}")
    return 0


def _sepconv_model(args: argparse.Namespace, kwargs: dict, create_model: Callable) -> nn.Module:
    if args.model_args is not None:
        raise ArgumentError("--model-args applies to a MODULE:FACTORY model; sepconv's models take --conv, "
                            "--width-mult, --num-classes and --resolution")
    try:  # an option the model does not take is refused, never silently ignored
        return create_model(args.model, **kwargs).eval()
    except ArgumentError as err:
        raise ArgumentError(str(err).replace("_", "-").replace(" takes no argument '", " takes no option '--")
                            if "takes no argument" in str(err) else str(err)) from None


def _user_model(args: argparse.Namespace, kwargs: dict) -> nn.Module:
    from ._model_spec import build_model, model_args

    if kwargs:
        flag = "--" + next(iter(kwargs)).replace("_", "-")
        raise ArgumentError(f"{flag} applies to sepconv's own models; pass your factory's arguments with "
                            "--model-args and the shape with --input-shape")
    return build_model(args.model, model_args(args.model_args)).eval()


def _shape(args: argparse.Namespace, model: nn.Module) -> tuple[int, ...]:
    """``(B, C, H, W)`` of the exported graph: ``--input-shape``, else the model's size at ``--batch``."""
    from ._model_spec import input_shape

    if args.input_shape is not None:
        if args.batch is not None or args.resolution is not None:
            raise ArgumentError("--input-shape sets the whole shape: give it without --batch and --resolution")
        return input_shape(args.input_shape, model, args.model)
    size = input_shape(None, model, args.model)[1:]
    if args.resolution is not None:
        size = (size[0], args.resolution, args.resolution)
    return (args.batch or 1, *size)
