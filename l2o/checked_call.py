"""Build a named component from keyword arguments, with errors that list the choices."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def valid_arguments(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """The keyword arguments ``factory`` accepts, following ``**kwargs`` of a class's
    ``__init__`` up its base classes; and whether it accepts any keyword at all."""
    functions = (
        [c.__init__ for c in factory.__mro__ if "__init__" in vars(c)] if inspect.isclass(factory) else [factory]
    )
    names: list[str] = []
    for fn in functions:
        params = inspect.signature(fn).parameters.values()
        names += [p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return list(dict.fromkeys(names)), False
    return list(dict.fromkeys(names)), True


def build(kind: str, name: str, registry: Mapping[str, Callable[..., Any]], kwargs: Mapping[str, Any]) -> Any:
    """Call ``registry[name](**kwargs)``.

    Raises:
        ValueError: ``name`` is not in the registry (lists the valid names), or a
            keyword is not an argument of the factory (lists the valid arguments).
    """
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid choices: {', '.join(registry)}")
    factory = registry[name]
    valid, open_ended = valid_arguments(factory)
    unknown = [k for k in kwargs if k not in valid]
    if unknown and not open_ended:
        raise ValueError(f"unknown argument(s) {unknown} for {kind} {name!r}; valid: {', '.join(valid)}")
    return factory(**kwargs)


def check_positive_int(name: str, value: Any) -> None:
    """Raises ValueError unless ``value`` is an int >= 1 (not a bool or a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
