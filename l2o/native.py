"""Small C kernels for CPU hot paths, compiled on first use and called through ctypes.

Some inner loops of this framework (a fused element-wise chain, a thin stencil, a
table lookup) run on a CPU far below its memory bandwidth when written as a string
of PyTorch operations: each operation is one pass over memory, allocates its
output, and for tensors of a few MB glibc hands fresh pages to every allocation.
For those loops a C file beside its Python caller holds one fused loop, and
``load_library(path)`` turns it into a ``ctypes.CDLL``:

- compiled with the system's C compiler (``$CC``, else ``cc``) as
  ``-O3 -fno-trapping-math -fopenmp -shared -fPIC`` (and ``-mavx2 -mfma`` where
  the CPU has them; ``-fno-trapping-math`` lets branch-free selects vectorise and
  keeps IEEE results, NaN included) into
  ``$MDL_NATIVE_CACHE`` (default ``~/.cache/model-driven-dl/native``), named by a
  hash of the sources, the flags and this CPU's feature flags, written to a
  temporary file and renamed; later calls and processes load the cached file;
- OpenMP: the library links ``libgomp.so.1``, which PyTorch's CPU wheel has
  already loaded, so the kernels share PyTorch's thread pool and its thread count
  (``torch.set_num_threads``) instead of competing with it;
- no compiler, or a failed build: ``None`` and one warning, and the callers use
  their PyTorch path; ``MDL_NATIVE=0`` asks for that path everywhere, and code
  traced by ``torch.compile`` takes it too.

Every kernel has a PyTorch twin that the tests compare it with. The callers use
kernels where no autograd graph is needed, or (the LSTM cell) inside an
``autograd.Function`` whose backward is a kernel too.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

FLAGS = ("-O3", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC", "-std=c99")
SHARED_INCLUDE = Path(__file__).resolve().parent / "kernels"  # both_types.h, for every kernel file
_loaded: dict[Path, ctypes.CDLL | None] = {}
_disabled = 0


def enabled() -> bool:
    """False under ``MDL_NATIVE=0``, inside ``disabled()``, and while ``torch.compile``
    traces (the compiler fuses the PyTorch path itself; a ctypes call would break
    its graph)."""
    import torch

    if torch.compiler.is_compiling():
        return False
    return _disabled == 0 and os.environ.get("MDL_NATIVE", "1") != "0"


@contextmanager
def disabled():
    """Run the PyTorch paths instead of the kernels (for comparisons and tests)."""
    global _disabled
    _disabled += 1
    try:
        yield
    finally:
        _disabled -= 1


def cache_dir() -> Path:
    return Path(os.environ.get("MDL_NATIVE_CACHE", Path.home() / ".cache" / "model-driven-dl" / "native"))


def _cpu_signature() -> str:
    """The CPU's feature flags (in the cache key: a library built with AVX2 must not
    be loaded on a CPU without it, e.g. from a home directory shared by machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _target_flags() -> list[str]:
    """AVX2 and FMA where the CPU has them (x86-64-v3). Not ``-march=native``: on an
    AVX-512 CPU (AMD EPYC, measured) its 512-bit gathers made the ADMM-Net kernel
    1.4x slower than AVX2 code."""
    flags = _cpu_signature().split()
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= set(flags):
        return ["-mavx2", "-mfma"]
    return []


def _compile(source: Path, target: Path, compiler: str) -> str | None:
    """Build ``target``; the compiler's complaint (or the file system's) if it fails."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="." + target.name, suffix=".tmp")
    except OSError as e:
        return f"cannot write to {target.parent}: {e.strerror}; set MDL_NATIVE_CACHE"
    os.close(fd)
    try:
        includes = [f"-I{source.parent}", f"-I{SHARED_INCLUDE}"]
        cmd = [compiler, *FLAGS, *_target_flags(), *includes, str(source), "-o", tmp, "-lm"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:  # e.g. a compiler without OpenMP: the kernels run on one thread
            run = subprocess.run([c for c in cmd if c != "-fopenmp"], capture_output=True, text=True)
        if run.returncode != 0:
            return (run.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        os.replace(tmp, target)
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_library(source: str | Path) -> ctypes.CDLL | None:
    """The compiled ``source`` (a C file; ``#include``s resolve beside it and in
    ``l2o/kernels``, whose ``both_types.h`` instantiates a kernel file for float and
    double), or None when kernels are disabled or it cannot be built (warned once)."""
    if not enabled():
        return None
    source = Path(source).resolve()
    if source in _loaded:
        return _loaded[source]
    lib = None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn(f"no C compiler found: {source.name} runs as PyTorch operations (slower)", stacklevel=2)
    else:
        key = hashlib.sha256()
        for part in (compiler, " ".join(FLAGS + tuple(_target_flags())), _cpu_signature(), platform.machine()):
            key.update(part.encode())
        for folder in dict.fromkeys((source.parent, SHARED_INCLUDE)):
            for f in sorted(folder.glob("*.[ch]")) + sorted(folder.glob("*.inc")):
                key.update(f.read_bytes())
        target = cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
        import torch  # noqa: F401  (loads PyTorch's libgomp first, so the kernels share its OpenMP runtime)

        error = None if target.is_file() else _compile(source, target, compiler)
        if error is None:
            try:
                lib = ctypes.CDLL(str(target))
            except OSError:  # a damaged cached file: build it again, once
                error = _compile(source, target, compiler)
                if error is None:
                    lib = ctypes.CDLL(str(target))
        if lib is None:
            warnings.warn(f"{source.name} did not compile ({error}); using PyTorch operations (slower)", stacklevel=2)
    _loaded[source] = lib
    return lib


def library_for(source: str | Path, t, inference_only: bool = False) -> ctypes.CDLL | None:
    """``load_library(source)`` where a kernel may take ``t``: a CPU tensor of float32,
    float64 or their complex types, and, with ``inference_only``, autograd off (the
    kernels that have no backward); else None (the caller's PyTorch path)."""
    import torch

    if inference_only and torch.is_grad_enabled():
        return None
    if t.device.type != "cpu" or str(t.dtype).removeprefix("torch.") not in _SUFFIX:
        return None
    return load_library(source)


_SUFFIX = {"float32": "f32", "float64": "f64", "complex64": "f32", "complex128": "f64"}


def call(lib: ctypes.CDLL, name: str, tensors, ints=(), floats=()) -> None:
    """Call ``name_f32`` or ``name_f64`` (by the first tensor's dtype; complex tensors
    are pairs of their real type) of ``lib`` as ``fn(*pointers, *longs, *doubles)``:
    the kernels take their arguments in that order. Tensors must be contiguous and
    on the CPU."""
    import torch

    dtype = str(tensors[0].dtype).removeprefix("torch.")
    fn = getattr(lib, f"{name}_{_SUFFIX[dtype]}")
    if getattr(fn, "argtypes", None) is None:
        fn.argtypes = [ctypes.c_void_p] * len(tensors) + [ctypes.c_long] * len(ints) + [ctypes.c_double] * len(floats)
        fn.restype = None
    for t in tensors:
        if not isinstance(t, torch.Tensor) or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError(f"{name}: native kernels take contiguous CPU tensors")
    fn(*(t.data_ptr() for t in tensors), *ints, *floats)
