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


class ConvVAE(nn.Module):
    """experiments/conv_vae.py for 28x28 images, NCHW: 4x4 stride-2 convs 1-32-64 (28 → 14 → 7), dense 256, a
    20-d Gaussian code; decoder dense 256 → 7x7x64 and two sub-pixel 2x upsamplings (a 3x3 conv to 4x the
    channels, then a pixel shuffle) to 14x14x32 and 28x28x1 logits. The same layers and FLOPs as aejax's."""

    def __init__(self, num_pixels: int, hidden: int, latent: int, channels: tuple[int, int] = (32, 64)):
        super().__init__()
        side = int(round(num_pixels ** 0.5))
        self.side, self.small, self.channels = side, side // 4, channels
        flat = channels[1] * self.small ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(1, channels[0], 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU())
        self.mean, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dense = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, flat), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.Conv2d(channels[1], 4 * channels[0], 3, padding=1), nn.PixelShuffle(2), nn.ReLU(),
            nn.Conv2d(channels[0], 4, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):
        h = self.encoder(x.view(-1, 1, self.side, self.side))
        mean, logvar = self.mean(h), self.logvar(h)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        h = self.dense(z).view(-1, self.channels[1], self.small, self.small)
        return self.upsample(h).flatten(1), mean, logvar


ARCHITECTURES = {"mlp": VAE, "conv": ConvVAE}


def negative_elbo(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-image −ELBO in nats: Bernoulli NLL summed over pixels + KL(q(z|x) ‖ N(0, I))."""
    logits, mean, logvar = model(x)
    reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = -0.5 * torch.sum(1 + logvar - mean.square() - logvar.exp(), dim=1)
    return reconstruction + kl


def run(train_images: np.ndarray, test_images: np.ndarray, *, epochs: int, batch_size: int,
        learning_rate: float, hidden: int, latent: int, threads: int, seed: int = 0,
        clock: Callable[[], float] = time.perf_counter, save_to: str | None = None,
        architecture: str = "mlp") -> dict:
    """Train for `epochs`; per-epoch examples/s (timed by `clock`), wall time to the first step, test −ELBO.

    `save_to`: a file the trained model's state_dict is saved to (what a script keeps of its run);
    `architecture`: "mlp" (experiments/vae.py) or "conv" (experiments/conv_vae.py, 28x28)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    start = time.perf_counter()
    train_x = torch.from_numpy(train_images.reshape(len(train_images), -1).astype(np.float32) / 255.0)
    test_x = torch.from_numpy(test_images.reshape(len(test_images), -1).astype(np.float32) / 255.0)
    model = ARCHITECTURES[architecture](train_x.shape[1], hidden, latent)
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
    if save_to:
        torch.save(model.state_dict(), save_to)
    return {"examples_per_sec": epoch_rates, "first_step_seconds": first_step_seconds,
            "test_negative_elbo": float(values.mean()), "threads": torch.get_num_threads(),
            "version": torch.__version__}


def matmul_seconds(matmuls, threads: int, dtype: str = "float32", iterations: int = 50, repeats: int = 3,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per step of only these (m, k, n) matmuls in eager PyTorch: its GEMM library at the step's shapes.

    The bench's `matmul` section prints it beside XLA's bound: how fast the same
    arithmetic can run through each framework's matmul kernels on this CPU (what
    caps any ratio of whole training steps). Minimum over `repeats` timings.
    """
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    operands = [(torch.randn(m, k, generator=generator).to(getattr(torch, dtype)),
                 torch.randn(k, n, generator=generator).to(getattr(torch, dtype))) for m, k, n in matmuls]
    for a, b in operands:  # warm-up: first calls pick kernels and allocate
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for _ in range(iterations):
            for a, b in operands:
                torch.mm(a, b)
        best = min(best, (clock() - start) / iterations)
    return best


def main(argv: list[str] | None = None) -> None:
    """The baseline as a whole process (the bench's `process` section): a plain script, no aejax, no JAX imported.

    python aejax/studies/bench/torch_vae.py TRAIN.npy TEST.npy OUT_DIR [--epochs=5] [--threads=N]
    Reads the uint8 images that aejax's own run reads (its array cache), trains, scores the test split, saves the
    model to OUT_DIR/model.pt and prints the result as one JSON line.
    """
    import argparse
    import json
    import os
    parser = argparse.ArgumentParser()
    parser.add_argument("train"), parser.add_argument("test"), parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=400)
    parser.add_argument("--latent", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    result = run(np.load(args.train), np.load(args.test), epochs=args.epochs, batch_size=args.batch_size,
                 learning_rate=1e-3, hidden=args.hidden, latent=args.latent, threads=args.threads, seed=args.seed,
                 save_to=os.path.join(args.out, "model.pt"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
