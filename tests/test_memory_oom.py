"""The OOM table: exception types first, then message patterns; everything else propagates."""

from __future__ import annotations

import gc
import sys
import weakref

import pytest

from wandb_batchsize.memory import oom
from wandb_batchsize.memory.oom import OOM_TABLE, is_oom_error, oom_backend, release_memory

# (exception, backend) for every wording the table must know
MESSAGES = [
    ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)", "cuda"),
    ("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported", "cuda"),
    ("HIP out of memory. Tried to allocate 1.50 GiB", "hip"),
    ("HIP error: out of memory", "hip"),
    ("hipErrorOutOfMemory", "hip"),
    ("MPS backend out of memory (MPS allocated: 17.5 GB, other allocations: 1.2 GB)", "mps"),
    ("XPU out of memory. Tried to allocate 512.00 MiB", "xpu"),
    ("UR_RESULT_ERROR_OUT_OF_DEVICE_MEMORY", "xpu"),
    ("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in", "cudnn"),
    ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "cudnn"),
    ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "cublas"),
    (
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 17039360 bytes. Error code 12 (Cannot allocate memory)",
        "cpu",
    ),
    ("DefaultCPUAllocator: not enough memory: you tried to allocate 1024 bytes.", "cpu"),
    ("FATAL ERROR :: MODULE:PT_DEVMEM Allocation failed", "hpu"),
    ("OOM when allocating tensor with shape[155,32,1024] and type float", "tensorflow"),
    ("could not create a primitive", "onednn"),
]

NOT_OOM = [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"),
    RuntimeError("could not create a primitive descriptor for a convolution forward primitive"),
    RuntimeError("Expected all tensors to be on the same device"),
    ValueError("CUDA out of memory"),  # the wording alone, on a type that never means OOM
    KeyError("DefaultCPUAllocator: can't allocate memory"),
    TypeError("unsupported operand"),
    KeyboardInterrupt(),
]


@pytest.mark.parametrize(("message", "backend"), MESSAGES)
def test_message_patterns(message, backend):
    assert oom_backend(RuntimeError(message)) == backend
    assert is_oom_error(RuntimeError(message))


def test_every_backend_named_in_the_spec_is_in_the_table():
    backends = {rule.backend for rule in OOM_TABLE}
    assert {"cuda", "hip", "mps", "xpu", "cudnn", "cpu", "tensorflow"} <= backends
    kinds = [rule.kind for rule in OOM_TABLE]
    assert kinds.index("message") > max(i for i, k in enumerate(kinds) if k == "type")


@pytest.mark.parametrize("exc", NOT_OOM, ids=lambda e: type(e).__name__ + ":" + str(e)[:30])
def test_other_errors_are_not_oom(exc):
    assert not is_oom_error(exc)
    assert oom_backend(exc) is None


def test_exception_types_come_first():
    torch = pytest.importorskip("torch")
    assert oom_backend(torch.OutOfMemoryError("anything at all")) == "torch"
    assert oom_backend(torch.cuda.OutOfMemoryError("x")) == "torch"
    assert oom_backend(MemoryError()) == "python"
    assert is_oom_error(MemoryError("Unable to allocate 128. MiB for an array"))


def test_tensorflow_resource_exhausted_is_oom():
    tf = pytest.importorskip("tensorflow")
    exc = tf.errors.ResourceExhaustedError(None, None, "some message without the usual words")
    assert oom_backend(exc) == "tensorflow"
    assert not is_oom_error(tf.errors.InvalidArgumentError(None, None, "bad shape"))


def test_a_cause_chain_mentioning_oom_is_not_an_oom():
    try:
        try:
            raise RuntimeError("CUDA out of memory")
        except RuntimeError as inner:
            raise ValueError("while loading data") from inner
    except ValueError as outer:
        assert not is_oom_error(outer)


def test_no_framework_is_imported_to_classify(monkeypatch):
    for name in ("torch", "torch.cuda", "tensorflow.python.framework.errors_impl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert is_oom_error(RuntimeError("CUDA out of memory"))
    assert not is_oom_error(RuntimeError("shape mismatch"))
    assert "torch" not in sys.modules


def test_release_memory_clears_the_frames_of_the_failed_step():
    class Big:
        pass

    holder: list[weakref.ref] = []

    def step():
        activations = Big()
        holder.append(weakref.ref(activations))
        raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")

    try:
        step()
    except RuntimeError as exc:
        assert is_oom_error(exc)
        assert holder[0]() is not None  # the traceback keeps the step's locals alive
        release_memory(exc)
        gc.collect()
        assert holder[0]() is None
    release_memory(full=False)  # also fine with nothing to release


def test_short_message_is_one_line():
    text = oom.short_message(RuntimeError("a\nb   c" + "x" * 500), limit=40)
    assert "\n" not in text and len(text) <= len("RuntimeError: ") + 40
