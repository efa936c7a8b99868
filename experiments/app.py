"""What every Hydra entry point shares: config checking with one clear error that
lists the valid choices, and the conversion of bad settings into that error."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
OPEN_NODES = {"checkpoint"}  # mappings a user may add keys to with +node.key=value


class ConfigError(ValueError):
    """A setting is wrong; the message says what was expected."""


@contextmanager
def config_errors(what: str = "") -> Iterator[None]:
    """Turn the exception a library raises on a bad setting (``ValueError``,
    ``TypeError`` for a value of the wrong type, ``FileNotFoundError``, ``KeyError``,
    ``IndexError``, a missing mandatory config value) into a ``ConfigError``."""
    from omegaconf.errors import MissingMandatoryValue

    try:
        yield
    except ConfigError:
        raise
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or str(e).split("\n")[0]
        raise ConfigError(f"{what + ': ' if what else ''}{key} must be set (it has no default)") from e
    except (ValueError, TypeError, FileNotFoundError, KeyError, IndexError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, TypeError):
            msg = f"a setting has the wrong type ({msg}); numbers must be numbers"
        raise ConfigError(f"{what}: {msg}" if what else str(msg)) from e


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _keys_at(cfg: Any, path: str) -> list[str] | None:
    node = OmegaConf.select(cfg, path) if path else cfg
    return sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else None


def _extra_keys(base: Any, cfg: Any, prefix: str = "") -> list[str]:
    """Keys of ``cfg`` (added with ``+key=value``) that ``base`` does not have, below
    nodes that are mappings in ``base``."""
    out = []
    if prefix.rstrip(".") in OPEN_NODES:
        return out
    base_keys = set(base.keys())  # `k in base` is False for a mandatory (???) value
    for k in cfg.keys():
        path = f"{prefix}{k}"
        if k not in base_keys:
            out.append(path)
        elif OmegaConf.is_missing(base, k) or OmegaConf.is_missing(cfg, k):
            continue
        elif isinstance(base[k], DictConfig) and isinstance(cfg[k], DictConfig):
            out += _extra_keys(base[k], cfg[k], path + ".")
    return out


def check_overrides(config_name: str, argv: list[str]) -> None:
    """Compose the config with the command line's overrides and raise ``ConfigError``
    for an unknown key or group option, listing the valid ones."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if any(a in ("-m", "--multirun") for a in argv):
        return  # sweeps are checked per job by the app itself
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    user = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]

    def compose_with(ovs):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(CONFIG_DIR), version_base=None):
                return compose(config_name, overrides=ovs)
        finally:
            GlobalHydra.instance().clear()

    try:
        cfg = compose_with(user)
    except Exception as e:  # hydra raises several exception types for bad overrides
        text = str(e)
        m = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
        if m:
            group, option = m.groups()
            raise ConfigError(
                f"unknown {group} {option!r}; valid choices: {', '.join(_group_options(group))}"
            ) from None
        m = re.search(r"Could not override '([^']+)'", text)
        if m:
            key = m.group(1)
            parent, _, leaf = key.rpartition(".")
            rest = [o for o in user if not o.lstrip("+~").startswith(key + "=")]
            try:
                valid = _keys_at(compose_with(rest), parent)
            except Exception:
                valid = None
            where = f"under '{parent}'" if parent else "at the top level"
            listing = f"; valid keys {where}: {', '.join(valid)}" if valid else ""
            raise ConfigError(f"unknown config key {key!r}{listing}") from None
        raise ConfigError(text.split("\nConfig search path")[0]) from None
    group_choices = [o for o in user if "." not in o.split("=", 1)[0] and not o.startswith(("+", "~"))]
    base = compose_with(group_choices)
    extra = _extra_keys(base, cfg)
    if extra:
        parent = extra[0].rpartition(".")[0]
        valid = _keys_at(base, parent) or []
        raise ConfigError(
            f"unknown config key(s) {extra}; valid keys {'under ' + repr(parent) if parent else 'at the top level'}: "
            f"{', '.join(valid)}"
        )


def exit_with(error: Exception) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def hydra_app(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorator for an entry point ``fn(cfg)``: checks the command line against the
    config first, runs ``fn`` under ``hydra.main``, and reports a ``ConfigError`` as
    one line on stderr with exit status 2 (``HYDRA_FULL_ERROR=1`` shows tracebacks)."""
    import hydra

    def decorator(fn: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(fn)
        def guarded(cfg: DictConfig) -> Any:
            try:
                return fn(cfg)
            except ConfigError as e:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                exit_with(e)

        hydra_main = hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base=None)(guarded)

        @functools.wraps(fn)
        def main() -> Any:
            try:
                check_overrides(config_name, sys.argv[1:])
            except ConfigError as e:
                exit_with(e)
            return hydra_main()

        return main

    return decorator


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def load_start_weights(module: Any, state_dict: dict, path: Any, strict: bool = True) -> tuple[list, list]:
    """``module.load_state_dict(state_dict)`` for ``init_from=path``: a shape or name
    mismatch becomes a ValueError naming the file (report it in ``config_errors``).
    Returns the missing and unexpected keys (non-empty only with ``strict=False``); a
    missing key that names the same tensor as a loaded one (a shared module, e.g. the
    shared-energy GD-MRF's energy seen from every step) is loaded, so not listed."""
    try:
        missing, unexpected = module.load_state_dict(state_dict, strict=strict)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit this model: {str(e).splitlines()[-1].strip()}") from None
    own = module.state_dict(keep_vars=True)
    loaded = {id(own[k]) for k in state_dict if k in own}
    return [k for k in missing if id(own[k]) not in loaded], list(unexpected)


def positive_int(cfg: DictConfig, key: str) -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def run_dir() -> Path:
    """The Hydra run directory of the current job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def torch_dtype(name: str):
    import torch

    valid = {"float32": torch.float32, "float64": torch.float64}
    if name not in valid:
        raise ConfigError(f"unknown dtype {name!r}; valid choices: {', '.join(valid)}")
    return valid[name]


def torch_device(name: str):
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"bad device {name!r} ({e}); expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use device=cpu")
    return device
