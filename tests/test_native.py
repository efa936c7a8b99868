"""The C-kernel builder: compiled once and cached, a clear fallback when a source
does not build, and a switch back to the PyTorch paths."""

import shutil

import pytest
import torch

from l2o import native

NEEDS_CC = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler on this machine"
)

SOURCE = """
void scale_f32(const float *x, float *y, long n, double a) {
#pragma omp parallel for
    for (long i = 0; i < n; i++) y[i] = (float)a * x[i];
}
"""


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty kernel cache, and no library loaded yet in this process."""
    monkeypatch.setenv("MDL_NATIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_loaded", {})
    return tmp_path


@NEEDS_CC
def test_compiles_once_caches_and_calls(fresh):
    src = fresh / "k" / "scale.c"
    src.parent.mkdir()
    src.write_text(SOURCE)
    lib = native.load_library(src)
    assert lib is not None
    built = list((fresh / "cache").glob("scale-*.so"))
    assert len(built) == 1
    x = torch.arange(10, dtype=torch.float32)
    y = torch.empty_like(x)
    native.call(lib, "scale", (x, y), (10,), (2.5,))
    torch.testing.assert_close(y, 2.5 * x)
    # a new process (here: a forgotten handle) loads the cached file instead of compiling again
    native._loaded.clear()
    mtime = built[0].stat().st_mtime_ns
    assert native.load_library(src) is not None
    assert built[0].stat().st_mtime_ns == mtime
    # a changed source is a new build
    native._loaded.clear()
    src.write_text(SOURCE + "\n/* changed */\n")
    native.load_library(src)
    assert len(list((fresh / "cache").glob("scale-*.so"))) == 2


@NEEDS_CC
def test_a_damaged_cached_library_is_built_again(fresh, monkeypatch):
    src = fresh / "scale.c"
    src.write_text(SOURCE)
    assert native.load_library(src) is not None
    (built,) = (fresh / "cache").glob("scale-*.so")
    # the same name in another cache, damaged (a library this process loaded would not be reopened)
    monkeypatch.setenv("MDL_NATIVE_CACHE", str(fresh / "other"))
    (fresh / "other").mkdir()
    damaged = fresh / "other" / built.name
    damaged.write_bytes(b"not a shared library")
    native._loaded.clear()
    lib = native.load_library(src)
    assert lib is not None and damaged.read_bytes()[:4] == b"\x7fELF"


@NEEDS_CC
def test_a_source_that_does_not_compile_warns_and_falls_back(fresh, monkeypatch):
    src = fresh / "bad.c"
    src.write_text("this is not C")
    with pytest.warns(UserWarning, match="did not compile"):
        assert native.load_library(src) is None
    assert not list((fresh / "cache").glob("*.so"))
    # a cache that cannot be written: the same fallback, with the reason
    (fresh / "file").write_text("")
    monkeypatch.setenv("MDL_NATIVE_CACHE", str(fresh / "file" / "cache"))
    good = fresh / "good.c"
    good.write_text(SOURCE)
    with pytest.warns(UserWarning, match="cannot write to .*MDL_NATIVE_CACHE"):
        assert native.load_library(good) is None


def test_switches_and_argument_checks(fresh, monkeypatch):
    src = fresh / "scale.c"
    src.write_text(SOURCE)
    with native.disabled():
        assert native.load_library(src) is None
    monkeypatch.setenv("MDL_NATIVE", "0")
    assert native.load_library(src) is None
    monkeypatch.delenv("MDL_NATIVE")
    lib = native.load_library(src)
    if lib is None:
        pytest.skip("no C compiler")
    x = torch.arange(10, dtype=torch.float32)
    with pytest.raises(ValueError, match="contiguous CPU tensors"):
        native.call(lib, "scale", (x[::2], torch.empty(5)), (5,), (1.0,))
