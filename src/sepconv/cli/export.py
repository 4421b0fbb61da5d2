"""``sepconv export``: write a reference model to ONNX and check it in ONNX Runtime."""

from __future__ import annotations

import argparse

from ..errors import ArgumentError

HELP = "export a reference model (mobilenet_v1, xception, ...) to ONNX and verify it in ONNX Runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `sepconv cost --model`)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--conv", default="depthwise", help="depthwise or standard convs")
    parser.add_argument("--width-mult", type=float, default=1.0, help="MobileNet width multiplier")
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
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
    if args.width_mult <= 0:
        raise ArgumentError(f"--width-mult must be > 0, got {args.width_mult}")
    kwargs = {"conv": args.conv, "width_mult": args.width_mult, "num_classes": args.num_classes}
    if args.resolution is not None:
        kwargs["resolution"] = args.resolution
    model = create_model(args.model, **kwargs).eval()
    size = model.input_size if args.resolution is None else (3, args.resolution, args.resolution)
    if args.fuse:
        model = fuse(model, channels_last=False)
    diff = export_onnx(model, args.out, (args.batch, *size), check=not args.no_check)
    checked = "" if diff is None else f"; ONNX Runtime max |diff| = {diff:.2e}"
    print(f"wrote {args.out} ({args.model}, input {args.batch}x{'x'.join(map(str, size))}){checked}")
    return 0
