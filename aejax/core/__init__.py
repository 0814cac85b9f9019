"""The shared vocabulary every other package imports, and that imports nothing of theirs.

errors (what a user can fix), options (how a module declares its config keys),
variant (what a registered autoencoder is), distributions (the maths of the notes),
optim (optimisers and the gradient update rule), parallel (the device mesh),
batching, cpu_tuning, cli (plumbing of the `python -m aejax.*` commands).
"""
