"""Studies built on training and evaluation: sweeps and their summaries, pretraining → classifier,
linear AE vs PCA, and the speed bench. The `python -m aejax.<name>` commands are thin entries to these."""
