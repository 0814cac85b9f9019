"""The canonical VAE written the usual way in PyTorch: the baseline of `python -m aejax.bench`.

Usual way: an `nn.Module`, `torch.optim.Adam`, eager execution; the whole
training split is one float32 tensor in [0, 1] and each batch is indexed out
of it by a `torch.randperm` slice (tensor batching, no DataLoader), then
binarised with `torch.bernoulli` (dynamic binarisation). Imported only when
torch is installed (`pip install .[bench]`).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn


class VAE(nn.Module):
    """784-400-20 Gaussian encoder, 20-400-784 Bernoulli decoder (logits)."""

    def __init__(self, num_pixels: int, hidden: int, latent: int):
        super().__init__()
        self.hidden, self.mean, self.logvar = (nn.Linear(num_pixels, hidden), nn.Linear(hidden, latent),
                                               nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, num_pixels))

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        mean, logvar = self.mean(h), self.logvar(h)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        return self.decoder(z), mean, logvar


def negative_elbo(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """Per-image −ELBO in nats: Bernoulli NLL summed over pixels + KL(q(z|x) ‖ N(0, I))."""
    logits, mean, logvar = model(x)
    reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = -0.5 * torch.sum(1 + logvar - mean.square() - logvar.exp(), dim=1)
    return reconstruction + kl


def run(train_images: np.ndarray, test_images: np.ndarray, *, epochs: int, batch_size: int,
        learning_rate: float, hidden: int, latent: int, threads: int, seed: int = 0,
        clock: Callable[[], float] = time.perf_counter) -> dict:
    """Train for `epochs`; per-epoch examples/s (timed by `clock`), wall time to the first step, test −ELBO."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    train_x = torch.from_numpy(train_images.reshape(len(train_images), -1).astype(np.float32) / 255.0)
    test_x = torch.from_numpy(test_images.reshape(len(test_images), -1).astype(np.float32) / 255.0)
    model = VAE(train_x.shape[1], hidden, latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = len(train_x) // batch_size

    def step(x):
        loss = negative_elbo(model, torch.bernoulli(x)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    first_step_seconds, epoch_rates = None, []
    for _ in range(epochs):
        order = torch.randperm(len(train_x))
        epoch_start = clock()
        for i in range(steps_per_epoch):
            step(train_x[order[i * batch_size:(i + 1) * batch_size]])
            if first_step_seconds is None:
                first_step_seconds = time.perf_counter() - start
        epoch_rates.append(steps_per_epoch * batch_size / (clock() - epoch_start))
    with torch.no_grad():
        values = torch.cat([negative_elbo(model, torch.bernoulli(x)) for x in test_x.split(1000)])
    return {"examples_per_sec": epoch_rates, "first_step_seconds": first_step_seconds,
            "test_negative_elbo": float(values.mean()), "threads": torch.get_num_threads(),
            "version": torch.__version__}
