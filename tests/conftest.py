"""Test set-up: CPU, fast compiles, the repo root importable (for experiments/)."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

# Tiny configs spend most of their time compiling; optimisation buys nothing there.
jax.config.update("jax_disable_most_optimizations", True)
