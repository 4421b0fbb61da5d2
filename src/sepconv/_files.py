"""Atomic file writes: a result file is either the old one or the whole new one, never half written.

The new content goes to a hidden temporary file in the target's folder (``.name.XXXX.tmp``), which is renamed
over the target once complete. The file gets the usual permissions (``0o666`` minus the process umask, as
``open()`` gives), not ``mkstemp``'s owner-only ``0o600``, and the temporary file is removed if writing fails or
is interrupted (Ctrl-C included), so no ``tmp*`` file is left behind.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "out.txt", lambda tmp: tmp.write_text("hello"))
    >>> (folder / "out.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['out.txt'])
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "umask_mode"]


def umask_mode() -> int:
    """The permission bits a newly created file gets under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` to fill a temporary file next to ``path``, then rename it to ``path`` atomically.

    Args:
        path: the target file; its folder must exist.
        write: writes the whole content to the temporary path it is given (keeps the target's suffix, so that
            writers choosing a format by suffix, such as PIL or matplotlib, still work).
    """
    path = Path(path)
    # the name is chosen before the file exists, so that an interrupt (Ctrl-C) that lands right after the file is
    # created is already inside the ``try`` that removes it (with ``mkstemp``, Python code ran in between)
    tmp = path.parent / f".{path.stem}.{secrets.token_hex(8)}.tmp{path.suffix}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # never an existing file or link
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if not (isinstance(err, FileExistsError) and err.filename == str(tmp)):  # not ours to remove
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, with the usual permissions."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
