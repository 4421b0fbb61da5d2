"""Load a ``torch.export`` program file (``.pt2``) without running code hidden in it.

``torch.export.load`` unpickles parts of the archive: weights and constants marked ``use_pickle`` are read with
``torch.load(weights_only=False)`` or ``pickle.loads``, custom objects with the TorchScript unpickler, and the
sample inputs fall back to ``weights_only=False`` when the safe load fails. A crafted ``.pt2`` can therefore run
any command when it is loaded. :func:`load_program` inspects the zip archive first and refuses it unless every
member is one that ``torch.export.save`` writes for plain tensors (raw weight bytes, JSON configs, the graph as
JSON) with no ``use_pickle`` entry, and the sample inputs load with ``torch.load(weights_only=True)``; only then is
the archive handed to ``torch.export.load``. Programs with custom (TorchScript) objects or pickled constants are
refused with a one-line reason: re-export them without those, or convert the ``nn.Module`` and its state_dict.

Example:
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/m.pt2"
    >>> torch.export.save(torch.export.export(torch.nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8),)), path)
    >>> type(load_program(path)).__name__
    'ExportedProgram'
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import torch

from .errors import DataFormatError

__all__ = ["UnsafeProgramError", "load_program"]

# members torch.export.save writes for programs made only of tensors, relative to the archive's top folder
_SAFE_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/[^/]+\.json|data/weights/weight_\d+|data/weights/model_weights_config\.json"
    r"|data/constants/tensor_\d+|data/constants/model_constants_config\.json|data/sample_inputs/[^/]+\.pt)"
)


class UnsafeProgramError(DataFormatError):
    """A program file holds content that loading would unpickle (code could run): it is refused."""


def _members(archive: zipfile.ZipFile, path: str) -> dict[str, str]:
    """``{name relative to the top folder: full name}``; every member must sit under one top folder."""
    names = [n for n in archive.namelist() if not n.endswith("/")]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or any("/" not in n for n in names):
        raise DataFormatError(f"{path}: not a torch.export archive (members must sit in one top folder)")
    return {n.split("/", 1)[1]: n for n in names}


def _check_archive(archive: zipfile.ZipFile, path: str) -> None:
    members = _members(archive, path)
    unexpected = sorted(rel for rel in members if not _SAFE_MEMBERS.fullmatch(rel))
    if unexpected:
        raise UnsafeProgramError(f"{path}: refused, it holds {unexpected[0]!r}, which torch.export.load would "
                                 "unpickle or does not belong to a plain program (custom objects, extra files)")
    for rel in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        if rel in members:
            config = json.loads(archive.read(members[rel]).decode("utf-8")).get("config", {})
            pickled = [name for name, meta in config.items() if isinstance(meta, dict) and meta.get("use_pickle")]
            if pickled:
                raise UnsafeProgramError(f"{path}: refused, {pickled[0]!r} is stored pickled (use_pickle) and "
                                         "loading it could run code")
    for rel, name in members.items():
        if rel.startswith("data/sample_inputs/"):
            try:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)
            except Exception as err:  # the unpickler's errors have many types
                raise UnsafeProgramError(f"{path}: refused, its sample inputs need a full unpickler "
                                         f"({type(err).__name__})") from None


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """Load the ``torch.export`` program at ``path`` after checking that loading it cannot run code.

    Raises:
        UnsafeProgramError: the archive holds pickled content (see the module docstring).
        DataFormatError: not a readable ``torch.export`` archive.
    """
    path = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, path)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{path}: not a torch.export archive ({type(err).__name__}: {err})"[:300]) from None
    try:
        return torch.export.load(path)
    except Exception as err:  # deserialisation errors have many types
        raise DataFormatError(f"{path}: cannot load the torch.export program ({type(err).__name__}: {err})"[:300]) \
            from None
