"""Tests run in float64 by default (Jacobian checks to 1e-10); float32 checks cast explicitly."""
import jax

jax.config.update("jax_enable_x64", True)
