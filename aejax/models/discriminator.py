"""The MLP critic of the two-player variants (adversarial AE, FactorVAE), and its config keys."""
from __future__ import annotations

import flax.linen as nn

from aejax.core.options import Option, positive, sizes
from aejax.models.mlp import MLP

OPTIONS = {
    "discriminator_hidden_dims": Option((1000,) * 6, sizes, "hidden widths of the critic MLP"),
    "discriminator_learning_rate": Option(1e-4, positive, "the critic's own learning rate"),
}


def build_discriminator(config, num_logits: int, activation: str) -> nn.Module:
    """An MLP from codes to `num_logits` logits with `config.discriminator_hidden_dims` hidden layers."""
    return MLP((*config.discriminator_hidden_dims, num_logits), activation)
