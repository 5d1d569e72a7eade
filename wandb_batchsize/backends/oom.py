"""Out-of-memory recognition and memory release: the one place that knows what an OOM is.

Framework-free: the backends (``backends.torch``, ``backends.keras``) and every
probe use it; ``wandb_batchsize.memory.oom`` is the same module under its
older, documented name.

Public, documented and framework-free at import time: any code that probes a
batch size (this package's memory search, the in-process batch-size probes,
the callbacks) asks :func:`is_oom_error` whether an exception means "the
device ran out of memory" and calls :func:`release_memory` afterwards, in the
way ``accelerate/utils/memory.py`` does for Accelerate.

Recognition goes through one table, :data:`OOM_TABLE`, in this order:

1. **exception types** — ``torch.OutOfMemoryError`` (alias
   ``torch.cuda.OutOfMemoryError``, raised by the CUDA, ROCm/HIP and XPU
   caching allocators), TensorFlow's ``tf.errors.ResourceExhaustedError``
   (also Keras 3 on TF), JAX/XLA's ``XlaRuntimeError`` whose message starts
   with ``RESOURCE_EXHAUSTED``, and Python's own :class:`MemoryError` (numpy
   and pure-Python allocations);
2. **message patterns**, matched only on :class:`RuntimeError` and its
   subclasses (``torch.AcceleratorError`` included): the CUDA, HIP, MPS, XPU,
   cuDNN, cuBLAS, Habana and CPU-allocator wordings listed in the table;
3. **whole messages**: oneDNN's bare ``could not create a primitive``.

A type is looked up only when its framework is already imported (through
``sys.modules``), so calling :func:`is_oom_error` never imports torch or
TensorFlow. Any exception not in the table is *not* an OOM: callers must
re-raise it unchanged (``raise``), never wrap it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OOMRule:
    """One row of the OOM table.

    ``kind`` is ``"type"`` (``pattern`` is ``"module:QualName"`` of an exception
    class), ``"message"`` (``pattern`` is a substring of ``str(exc)`` of a
    ``RuntimeError``) or ``"exact"`` (``str(exc)`` of a ``RuntimeError`` is
    exactly ``pattern``). ``backend`` names where the rule comes from.
    """

    kind: str
    backend: str
    pattern: str


#: The OOM table: exception types first, then message patterns.
OOM_TABLE: tuple[OOMRule, ...] = (
    # -- exception types ------------------------------------------------------
    OOMRule("type", "torch", "torch:OutOfMemoryError"),  # CUDA, HIP, XPU allocators
    OOMRule("type", "torch", "torch.cuda:OutOfMemoryError"),  # older alias
    OOMRule("type", "tensorflow", "tensorflow.python.framework.errors_impl:ResourceExhaustedError"),
    OOMRule("type", "python", "builtins:MemoryError"),
    # -- message patterns (RuntimeError and subclasses) -----------------------
    OOMRule("message", "cuda", "CUDA out of memory"),
    OOMRule("message", "cuda", "CUDA error: out of memory"),
    OOMRule("message", "cuda", "cudaErrorMemoryAllocation"),
    OOMRule("message", "hip", "HIP out of memory"),
    OOMRule("message", "hip", "HIP error: out of memory"),
    OOMRule("message", "hip", "hipErrorOutOfMemory"),
    OOMRule("message", "mps", "MPS backend out of memory"),
    OOMRule("message", "xpu", "XPU out of memory"),
    OOMRule("message", "xpu", "UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY"),
    OOMRule("message", "xpu", "PI_ERROR_OUT_OF_RESOURCES"),
    OOMRule("message", "cudnn", "CUDNN_STATUS_NOT_SUPPORTED"),  # cuDNN's OOM in disguise
    OOMRule("message", "cudnn", "CUDNN_STATUS_ALLOC_FAILED"),
    OOMRule("message", "cublas", "CUBLAS_STATUS_ALLOC_FAILED"),
    OOMRule("message", "cpu", "DefaultCPUAllocator: can't allocate memory"),
    OOMRule("message", "cpu", "DefaultCPUAllocator: not enough memory"),  # Windows wording
    OOMRule("message", "hpu", "PT_DEVMEM Allocation failed"),
    OOMRule("message", "xla", "RESOURCE_EXHAUSTED: Out of memory"),
    OOMRule("message", "tensorflow", "OOM when allocating tensor"),
    # -- whole messages (the error text is exactly this, nothing more) ---------
    # oneDNN (PyTorch's CPU conv/matmul): creating a primitive from a valid
    # descriptor fails when its scratchpad or JIT buffer cannot be allocated.
    # "could not create a primitive descriptor for ..." (an unsupported
    # configuration) is a different message and is not matched.
    OOMRule("exact", "onednn", "could not create a primitive"),
)


def _resolve_type(pattern: str) -> type | None:
    module_name, _, qualname = pattern.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


def oom_backend(exc: BaseException) -> str | None:
    """The backend whose out-of-memory ``exc`` is (``"torch"``, ``"cuda"``, ``"cpu"``, ...).

    ``None`` when ``exc`` is not an out-of-memory error. Only ``exc`` itself is
    looked at (not its ``__cause__``): an error that merely *mentions* an OOM
    further down its chain is not one.
    """
    if not isinstance(exc, BaseException):
        return None
    for rule in OOM_TABLE:
        if rule.kind != "type":
            continue
        cls = _resolve_type(rule.pattern)
        if cls is not None and isinstance(exc, cls):
            return rule.backend
    if isinstance(exc, RuntimeError):
        try:
            text = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ is not an OOM
            return None
        for rule in OOM_TABLE:
            if rule.kind == "message" and rule.pattern in text:
                return rule.backend
        stripped = text.strip()
        for rule in OOM_TABLE:
            if rule.kind == "exact" and rule.pattern == stripped:
                return rule.backend
    jax_error = type(exc).__name__ == "XlaRuntimeError" and str(exc).startswith(
        "RESOURCE_EXHAUSTED"
    )
    return "xla" if jax_error else None


def is_oom_error(exc: BaseException) -> bool:
    """True when ``exc`` means "out of memory" on some device (see :data:`OOM_TABLE`).

    Use it as the only test in an ``except`` clause, and re-raise everything else::

        try:
            step(batch)
        except Exception as exc:
            if not is_oom_error(exc):
                raise
            release_memory(exc)
    """
    return oom_backend(exc) is not None


def short_message(exc: BaseException, limit: int = 160) -> str:
    """A one-line summary of an exception, for progress tables and logs."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{name}: {text}" if text else name


_LIBC: Any = None


def _malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc only; a no-op elsewhere)."""
    global _LIBC
    if not sys.platform.startswith("linux"):
        return
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        with contextlib.suppress(Exception):
            _LIBC.malloc_trim(0)


def release_memory(*objects: Any, full: bool = True) -> None:
    """Free what a failed or finished probe held, on every backend that is loaded.

    For each exception in ``objects`` the locals of its traceback frames are
    cleared (they hold the activations of the step that ran out of memory).
    Then: ``gc.collect()`` (only the young generations with ``full=False``: a
    full collection costs ~0.2 s with torch loaded, and a step that ended
    normally leaves no cycles holding tensors); the caching allocators of the
    frameworks already imported (PyTorch: ``empty_cache`` of CUDA, MPS and XPU where
    they are in use, :func:`empty_device_caches`); and on Linux ``malloc_trim(0)`` so that
    the C heap gives freed pages back. Never raises: an OOM while freeing
    memory is swallowed, anything else is too (release is best effort).
    Drop your own references to the objects after the call.
    """
    for obj in objects:
        if isinstance(obj, BaseException):
            tb = obj.__traceback__
            with contextlib.suppress(Exception):
                traceback.clear_frames(tb)
            obj.__traceback__ = None
    del objects
    gc.collect() if full else gc.collect(1)
    empty_device_caches()
    _malloc_trim()


def empty_device_caches() -> None:
    """Empty the caching allocators of every framework already imported (never imports one)."""
    if "torch" in sys.modules:
        from wandb_batchsize.backends.torch_memory import empty_caches

        with contextlib.suppress(Exception):
            empty_caches()
