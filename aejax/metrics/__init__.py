"""Evaluation metrics on learned codes: pure numpy/scipy/sklearn, no model code.

`clustering` scores unsupervised structure (Hungarian accuracy, NMI, ARI, linear probes);
`disentanglement` scores codes against known generative factors (BetaVAE, FactorVAE, MIG, DCI).
"""
