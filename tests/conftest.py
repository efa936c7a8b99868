"""Shared fixtures. Tests that need the Deep ADMM-Net data read it from
``$ADMM_NET_DATA`` or ``../shared/data/deep-admm-net``; they skip when it is
absent, unless ``MDL_REQUIRE_SHARED_DATA=1`` (set by ``.ci/run``), which turns
the skip into a failure so that a wrong path cannot pass silently."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path:
    return Path(os.environ.get("ADMM_NET_DATA", ROOT.parent / "shared" / "data" / "deep-admm-net")).resolve()


@pytest.fixture(scope="session")
def admm_net_root() -> Path:
    root = shared_data_root()
    if not (root / "data" / "ChestTrain").is_dir():
        msg = f"Deep ADMM-Net data not found at {root} (set ADMM_NET_DATA)"
        if os.environ.get("MDL_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg + "; MDL_REQUIRE_SHARED_DATA=1 requires it")
        pytest.skip(msg)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Learning-rate tuning caches go to a temporary directory in tests."""
    monkeypatch.setenv("L2O_CACHE_DIR", str(tmp_path / "l2o-cache"))


def kernels_or_skip(source):
    """The compiled C kernels of ``source`` (``l2o.native``): a failure where a C
    compiler exists but they did not build, a skip where there is none."""
    import shutil

    from l2o import native

    lib = native.load_library(source)
    if lib is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail(f"{source} did not build although a C compiler is present")
        pytest.skip("no C compiler: the kernels fall back to PyTorch operations")
    return lib
