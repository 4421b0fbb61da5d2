"""``sepconv convert MODEL_FILE OUT_FILE``: convert a saved model's convs to separable ones, print the report.

MODEL_FILE is one of:

* a ``torch.export`` program (``torch.export.save``, usually ``.pt2``): its conv calls are converted by
  :func:`sepconv.convert_program.convert_program` (example inputs are generated from the program's input specs)
  and OUT_FILE receives the converted program (``torch.export.save``);
* a ``state_dict`` (``torch.load(..., weights_only=True)``) for the model built by ``--model NAME`` (a sepconv
  model: ``mobilenet_v1``, ``small_cnn``, ``xception``, with ``--model-args '{"num_classes": 10}'``) or
  ``--model MODULE:FACTORY`` (a function or nn.Module class of your own code, e.g. ``mypkg.nets:make_net``; this
  imports and runs that code, so name only modules you trust); OUT_FILE receives the
  converted model's ``state_dict``.

``--calibrate DATA`` (a data spec of ``sepconv study`` or an ``.npy``/``.pt`` tensor file, see
:mod:`sepconv.cli._calibration`; ``--calibrate-size N`` inputs, of which ``--calibrate-images`` the passes use)
allocates ranks by measured output error and refits the converted layers by least squares (``--refit``,
:mod:`sepconv.calibrate`).

``OUT_FILE.json`` receives the report, including the conversion plan: ``sepconv.apply_plan(model, "OUT_FILE.json")``
rebuilds the converted architecture from the original one, so ``load_state_dict(torch.load(OUT_FILE))`` works.
Both files are written atomically. TorchScript files are refused with a clear
message: a scripted module's submodule types are fixed by its compiled class (putting a separable layer where a
``Conv2d`` was raises), and its Python model class cannot be recovered from the file.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import atomic_write
from ..choices import CONVERSION_METHODS, REFITS
from ..errors import ArgumentError, DataFormatError
from ._table import print_table

if TYPE_CHECKING:
    import torch

# torch and the library load inside the functions that use them: the help and argument errors answer at once.


class ModelLoadError(DataFormatError):
    """A model file cannot be turned into a convertible ``nn.Module``."""


HELP = "convert a saved model's standard convs to separable ones within a MAC budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", metavar="MODEL_FILE",
                        help="torch.export program (.pt2) or state_dict file (torch.save)")
    parser.add_argument("out_file", metavar="OUT_FILE",
                        help="where to write the converted program (for a program) or state_dict")
    parser.add_argument("--model", default=None, metavar="NAME|MODULE:FACTORY",
                        help="for a state_dict: a sepconv model name (mobilenet_v1, small_cnn, xception) or "
                             "MODULE:FACTORY, a function or nn.Module class of your own code (the current directory "
                             "is importable) building the model the state_dict belongs to; this imports and runs "
                             "that code, so name only modules you trust")
    parser.add_argument("--model-args", default=None, metavar="JSON",
                        help='keyword arguments of --model as a JSON object, e.g. \'{"num_classes": 10}\'')
    parser.add_argument("--method", choices=CONVERSION_METHODS, default="depthwise",
                        help="depthwise: depthwise then 1x1; spatial: kx1 then 1xk (default: depthwise)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--budget", type=float, help="MAC budget relative to the original, in (0, 1]")
    group.add_argument("--rank", type=int, help="one rank for every layer")
    group.add_argument("--energy", type=float, help="per-layer kept energy in (0, 1]")
    parser.add_argument("--input-shape", default=None, metavar="B,C,H,W",
                        help="example input shape: MACs per forward pass and measured output errors")
    parser.add_argument("--include", action="append", default=None, help="module-name glob (repeatable)")
    parser.add_argument("--exclude", action="append", default=None, help="module-name glob (repeatable)")
    parser.add_argument("--calibrate", default=None, metavar="DATA",
                        help="unlabelled calibration inputs: digits, mnist:DIR, cifar10:DIR, folder:DIR, npz:FILE "
                             "(training images, standardised as sepconv study does) or an .npy/.pt tensor file")
    parser.add_argument("--calibrate-size", type=int, default=512, metavar="N",
                        help="number of calibration inputs (default 512)")
    parser.add_argument("--calibrate-images", default="auto", metavar="auto|all|N",
                        help="inputs the calibration passes use: auto (as many as the statistics need, at least 256, "
                             "spread over the data; the default), all, or a count")
    parser.add_argument("--refit", choices=REFITS, default=None,
                        help="least-squares refit with --calibrate (default pointwise)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="calibration batch size (default 32; a program takes its own static batch size)")


def file_kind(path: str) -> str:
    """``'program'`` (torch.export), ``'torchscript'`` or ``'state_dict'`` (anything else) for the file at ``path``."""
    if not Path(path).is_file():
        from ..models import available

        hint = ""
        if path in available():  # a model name where a trained model's file belongs
            hint = (f" (convert takes a trained model's file: torch.save(model.state_dict(), 'model.pt'), then "
                    f"'sepconv convert model.pt OUT --model {path} --budget ...')")
        raise FileNotFoundError(f"model file {path!r} does not exist{hint}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
            return "program"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
    return "state_dict"


def load_model(path: str, spec: str | None, model_args: str | None = None) -> torch.nn.Module:
    """Build ``spec``'s model (with ``model_args``, a JSON object) and load the state_dict at ``path``."""
    import torch

    from ._model_spec import build_model
    from ._model_spec import model_args as parse_model_args

    kind = file_kind(path)
    if kind == "torchscript":
        raise ModelLoadError(f"{path} is a TorchScript file: its submodule types are fixed by compiled code, so convs "
                             "cannot be swapped; save a torch.export program (.pt2) or the state_dict and --model")
    if spec is None:
        raise ArgumentError(f"--model is required for a state_dict file ({path}): a sepconv model name or "
                            "MODULE:FACTORY")
    kwargs = parse_model_args(model_args)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ModelLoadError(f"{path}: not a weights-only torch file ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: expected a state_dict (dict of tensors), got {type(state).__name__}")
    model = build_model(spec, kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ModelLoadError(f"{path} does not fit --model {spec}: {str(err).splitlines()[0]}") from None
    return model


def load_program(path: str) -> torch.export.ExportedProgram:
    """Load the ``torch.export`` program at ``path``, refusing archives whose loading would unpickle content."""
    from .. import program_file

    try:
        return program_file.load_program(path)
    except DataFormatError as err:
        raise ModelLoadError(str(err)) from None


def _budget_inputs(args: argparse.Namespace, model: torch.nn.Module, calibration: dict) -> torch.Tensor | None:
    """Example inputs for the budget: ``--input-shape``, else the registered model's own input size (said on stderr).

    A budget counts multiply-adds per image at that shape (strides included); without any shape it would count
    per output position, which picks other layers, so a budget without a shape is refused.
    """
    import torch

    from .. import _checks
    from ._model_spec import example_input

    example = example_input(args.input_shape)
    if example is not None or args.budget is None or calibration.get("calibration") is not None:
        return example
    _checks.number(args.budget, "budget", low=0, high=1, low_open=True)
    size = getattr(model, "input_size", None)
    if size is None:
        raise ArgumentError("--budget needs --input-shape (e.g. 1,3,224,224): the budget counts multiply-adds per "
                            "image at that shape, and this model declares no input size")
    print(f"budget counted on the model's input shape 1x{'x'.join(map(str, size))} (set it with --input-shape)",
          file=sys.stderr)
    return torch.randn(1, *size)


def _calibration(args: argparse.Namespace) -> dict:
    """The calibration keyword arguments of :func:`sepconv.convert` from the command line."""
    if args.calibrate_size < 1:
        raise ArgumentError(f"--calibrate-size must be a positive int, got {args.calibrate_size}")
    if args.calibrate is None:
        if args.refit not in (None, "none"):
            raise ArgumentError(f"--refit {args.refit} needs --calibrate DATA")
        if args.calibrate_images != "auto":
            raise ArgumentError(f"--calibrate-images {args.calibrate_images} needs --calibrate DATA")
        return {}
    from ._calibration import load_calibration  # the study's data loaders, only when asked (fast --help)

    images = args.calibrate_images
    if images not in ("auto", "all"):
        if not images.isdigit() or int(images) < 1:
            raise ArgumentError(f"--calibrate-images must be auto, all or a positive int, got {images!r}")
        images = int(images)
    return {"calibration": load_calibration(args.calibrate, args.calibrate_size), "refit": args.refit,
            "calibration_images": images}


def run(args: argparse.Namespace) -> int:
    import torch

    from ..convert import convert

    out = Path(args.out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration = _calibration(args)
    if file_kind(args.model_file) == "program":
        for flag, value in (("--model", args.model), ("--model-args", args.model_args),
                            ("--input-shape", args.input_shape)):
            if value is not None:
                raise ArgumentError(f"{flag} is for state_dict files; {args.model_file} is a torch.export program "
                                    f"(its inputs come from the program), got {flag} {value!r}")
        from ..convert_program import convert_program

        program, report = convert_program(load_program(args.model_file), args.method, budget=args.budget,
                                          rank=args.rank, energy=args.energy, include=args.include,
                                          exclude=args.exclude, **calibration)
        atomic_write(out, lambda tmp: torch.export.save(program, tmp))
    else:
        model = load_model(args.model_file, args.model, args.model_args)
        try:
            new_model, report = convert(model, args.method, budget=args.budget, rank=args.rank,
                                        energy=args.energy, include=args.include, exclude=args.exclude,
                                        example_inputs=_budget_inputs(args, model, calibration),
                                        batch_size=args.batch_size, **calibration)
        except (RuntimeError, IndexError) as err:  # torch's shape errors from running the user's model
            raise ArgumentError(f"--input-shape {args.input_shape} does not fit --model {args.model}: "
                                f"{str(err).splitlines()[0]}") from None
        atomic_write(out, lambda tmp: torch.save(new_model.state_dict(), tmp))
    atomic_write(out.with_name(out.name + ".json"), lambda tmp: Path(tmp).write_text(report.to_json()))
    title, columns, rows, caption = report.table_data()
    print_table(title, columns, rows, caption=caption)
    print(f"wrote {out} and {out}.json")
    return 0
