"""Training: the config of a run, its state, the pure jitted step, compiled chunks of steps, the loop,
checkpoints, progress, writers, and restoring a trained model (`restore.load`, what `aejax.load` calls)."""
