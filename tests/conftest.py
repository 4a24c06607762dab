"""Tests run in float64 by default (Jacobian checks to 1e-10); float32 checks cast explicitly."""
import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Each test module compiles its own programs: drop them afterwards, so the suite's peak
    memory is that of one module, not the sum of all (it stays well under 2 GB)."""
    yield
    jax.clear_caches()
    gc.collect()
