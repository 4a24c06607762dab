"""Tests run in float64 by default (Jacobian checks to 1e-10); float32 checks cast explicitly."""
import ctypes
import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)

try:  # glibc: hand freed heap pages back to the OS (else RSS keeps every module's high-water mark)
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
    _malloc_trim = None


def free_compiled_programs():
    """Drop JAX's compiled programs and caches, collect them, and return the memory to the OS."""
    jax.clear_caches()
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Each test module compiles its own programs: drop them afterwards, so the suite's peak
    memory is that of one module, not the sum of all (`/usr/bin/time -v`: ≤ 2 GB)."""
    yield
    free_compiled_programs()
