"""Objectives: one module per family, each a pure loss_fn -> (loss, metrics)."""
