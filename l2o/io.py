"""Files that must never be left half-written: JSON records and checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Any, mode: str = "w") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over
    ``path``: a crash leaves the old file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2, default=float))


def save_torch_atomic(path: str | Path, obj: Any) -> Path:
    """``torch.save`` through a temporary file and a rename."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def load_torch_checked(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """Load a file written by ``save_torch_atomic`` with ``weights_only=True`` and
    check that it is a dict whose ``format`` is ``fmt``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated, corrupt or foreign file (the message says which
            format was expected).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{what} {path} could not be read ({type(e).__name__}{': ' + detail if detail else ''}); "
            f"it is truncated, corrupt or not a torch file — expected a '{fmt}' file"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{what} {path} is not a '{fmt}' file (found format {found!r})")
    return obj
