"""Evaluation of trained runs: the data it runs on (`inputs`), likelihood by importance sampling,
clustering and disentanglement metrics (pure numpy/sklearn), scores against ground-truth factors, and
the drivers of `python -m aejax.evaluate` (`evaluate_run`) and `python -m aejax.inspect` (`inspect_run`)."""
