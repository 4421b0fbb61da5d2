"""``sepconv convert MODEL_FILE OUT_FILE``: convert a saved model's convs to separable ones, print the report.

MODEL_FILE is a ``state_dict`` (loaded with ``torch.load(..., weights_only=True)``) for the model built by
``--model MODULE:FACTORY`` (an importable callable returning the ``nn.Module``, e.g. ``mypkg.nets:make_net``).
OUT_FILE receives the converted model's ``state_dict`` and ``OUT_FILE.json`` the report (both written
atomically). TorchScript and ``torch.export`` files are recognised and refused with a clear message: their
convolutions are compiled graph operations, not ``nn.Conv2d`` modules that can be swapped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import zipfile
from pathlib import Path

import torch

from ..convert import METHODS, convert
from ..errors import ArgumentError, DataFormatError


class ModelLoadError(DataFormatError):
    """A model file cannot be turned into a convertible ``nn.Module``."""


HELP = "convert a saved model's standard convs to separable ones within a MAC budget"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", metavar="MODEL_FILE", help="state_dict file (torch.save)")
    parser.add_argument("out_file", metavar="OUT_FILE", help="where to write the converted state_dict")
    parser.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                        help="importable callable building the model the state_dict belongs to")
    parser.add_argument("--method", choices=METHODS, default="depthwise")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--budget", type=float, help="MAC budget relative to the original, in (0, 1]")
    group.add_argument("--rank", type=int, help="one rank for every layer")
    group.add_argument("--energy", type=float, help="per-layer kept energy in (0, 1]")
    parser.add_argument("--input-shape", default=None, metavar="B,C,H,W",
                        help="example input shape: MACs per forward pass and measured output errors")
    parser.add_argument("--include", action="append", default=None, help="module-name glob (repeatable)")
    parser.add_argument("--exclude", action="append", default=None, help="module-name glob (repeatable)")


def _factory(spec: str) -> torch.nn.Module:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ArgumentError(f"--model must look like MODULE:FACTORY, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ArgumentError(f"--model {spec!r} cannot be imported: {err}") from None
    if not callable(factory):
        raise ArgumentError(f"--model {spec!r} is a {type(factory).__name__}, not a callable returning a model")
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"--model {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_model(path: str, spec: str) -> torch.nn.Module:
    """Build ``spec``'s model and load the state_dict at ``path`` (``weights_only=True``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file {path!r} does not exist")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise ModelLoadError(f"{path} is a TorchScript file: its convs are compiled, not swappable modules; "
                                 "save model.state_dict() and pass --model MODULE:FACTORY")
        if any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
            raise ModelLoadError(f"{path} is a torch.export program: its convs are graph operations, not modules; "
                                 "save model.state_dict() and pass --model MODULE:FACTORY")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ModelLoadError(f"{path}: not a weights-only torch file ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: expected a state_dict (dict of tensors), got {type(state).__name__}")
    model = _factory(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ModelLoadError(f"{path} does not fit --model {spec}: {str(err).splitlines()[0]}") from None
    return model


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    model = load_model(args.model_file, args.model)
    example = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise ArgumentError(f"--input-shape must be comma-separated ints, got {args.input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise ArgumentError(f"--input-shape must hold positive ints, got {args.input_shape!r}")
        example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    new_model, report = convert(model, args.method, budget=args.budget, rank=args.rank, energy=args.energy,
                                include=args.include, exclude=args.exclude, example_inputs=example)
    out = Path(args.out_file)
    _atomic_write(out, lambda tmp: torch.save(new_model.state_dict(), tmp))
    _atomic_write(out.with_name(out.name + ".json"), lambda tmp: Path(tmp).write_text(report.to_json()))
    Console().print(report.table())
    print(f"wrote {out} and {out}.json")
    return 0
