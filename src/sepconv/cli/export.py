"""``sepconv export``: write a reference model to ONNX and check it in ONNX Runtime."""

from __future__ import annotations

import argparse

from ..errors import ArgumentError

HELP = "export a reference model (mobilenet_v1, xception, ...) to ONNX and verify it in ONNX Runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `sepconv cost --model`)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--conv", default=None, choices=("depthwise", "standard", "spatial"),
                        help="kind of the model's convs (default: the model's own; spatial: small_cnn only)")
    parser.add_argument("--width-mult", type=float, default=None,
                        help="width multiplier (mobilenet_v1 only; default: the model's, 1.0)")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the model's)")
    parser.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the exported graph (default 1)")
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
    try:  # an option the model does not take is refused, never silently ignored
        model = create_model(args.model, **kwargs).eval()
    except ArgumentError as err:
        raise ArgumentError(str(err).replace("_", "-").replace(" takes no argument '", " takes no option '--")
                            if "takes no argument" in str(err) else str(err)) from None
    size = model.input_size if args.resolution is None else (3, args.resolution, args.resolution)
    if args.fuse:
        model = fuse(model, channels_last=False)
    diff = export_onnx(model, args.out, (args.batch, *size), check=not args.no_check)
    checked = "" if diff is None else f"; ONNX Runtime max |diff| = {diff:.2e}"
    print(f"wrote {args.out} ({args.model}, input {args.batch}x{'x'.join(map(str, size))}){checked}")
    return 0
