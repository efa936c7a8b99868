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


def json_clean(x: Any) -> Any:
    """Plain JSON: non-finite floats become null, NumPy scalars Python numbers."""
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        return json_clean(x.item())
    return x


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON through a temporary file and a rename; NaN/Inf become null."""
    return atomic_write(path, lambda f: json.dump(json_clean(obj), f, indent=2))


def save_torch_atomic(path: str | Path, obj: Any) -> Path:
    """``torch.save`` through a temporary file and a rename."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def load_torch_checked(path: str | Path, fmt: str, what: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a file written by ``save_torch_atomic`` with ``weights_only=True`` and
    check that it is a dict whose ``format`` is ``fmt`` (or one of ``also``: other
    formats the caller accepts; the caller reads ``obj["format"]``, and errors name
    ``fmt``).

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
    if not isinstance(obj, dict) or obj.get("format") not in (fmt, *also):
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{what} {path} is not a '{fmt}' file (found format {found!r})")
    return obj


def save_named(path: str | Path, fmt: str, name: str, module: Any, **extra: Any) -> Path:
    """A module's registry name, constructor arguments (``module.config``) and
    parameters, written atomically as a ``fmt`` file."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return save_torch_atomic(path, {"format": fmt, "name": name, "config": module.config, "state_dict": state, **extra})


def build_named(obj: dict[str, Any], path: str | Path, registry: dict[str, Any], kind: str, **overrides: Any) -> Any:
    """Rebuild ``registry[obj["name"]](**config)`` and load ``obj["state_dict"]`` into it.

    Raises:
        ValueError: unknown name, or parameters that do not fit the module.
    """
    from l2o.checked_call import build

    if obj.get("name") not in registry:
        raise ValueError(f"{path}: unknown {kind} {obj.get('name')!r}; valid: {', '.join(registry)}")
    module = build(kind, obj["name"], registry, {**obj["config"], **overrides})
    missing, unexpected = module.load_state_dict(obj["state_dict"], strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: parameters do not fit {obj['name']} (missing {missing}, unexpected {unexpected})")
    return module
