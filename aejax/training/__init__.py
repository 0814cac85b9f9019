"""Training: the config of a run, its state, the pure jitted step, compiled chunks of steps, the loop,
checkpoints, progress, writers, and restoring a trained model (`restore.load`, what `aejax.load` calls);
and what keeps a run whole, callable by any trainer: the workdir's lock and atomic writes (`workdir`),
the rules for resuming with a changed config (`resume`), checksums (`integrity`), a clean stop on
SIGTERM/SIGINT (`preemption`)."""
