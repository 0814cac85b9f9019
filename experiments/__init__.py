"""Experiment configs: `base.py` holds the shared fields, one file per experiment."""
