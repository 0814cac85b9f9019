"""FactorVAE (Kim & Mnih 2018): the VAE plus γ times a discriminator's estimate of the total correlation.

    loss_vae = −E_q[log p(x|z)] + β·KL(q(z|x) ‖ N(0, I)) + γ·TC(z),   TC(z) = KL(q(z) ‖ Π_d q(z_d))

(β = 1 in the paper.) TC is estimated with the density-ratio trick: a discriminator D
is trained to tell samples of q(z) (z ~ q(z|x) over a batch) from samples of Π_d q(z_d)
(the same batch with every dimension permuted independently across the batch,
`permute_dims`); with logits (l_joint, l_product),

    TC ≈ E_q(z)[log D(z) / (1 − D(z))] = E_q(z)[l_joint − l_product]
    loss_D = ½ (CE(D(z), joint) + CE(D(permute_dims(z)), product))

As in disentanglement_lib the permuted samples come from the same batch (the paper
draws a second batch). D is an MLP (`config.discriminator_hidden_dims`, leaky ReLU,
2 logits) trained with its own Adam (lr `config.discriminator_learning_rate`,
b1 = 0.5, b2 = 0.9 as in the paper), the VAE with the config's optimiser.

Two players, one train step: the loss returned to the shared step is loss_vae +
loss_D, where loss_vae sees D's parameters through `stop_gradient` and loss_D sees z
through `stop_gradient`. So ∇_vae = ∇ loss_vae and ∇_D = ∇ loss_D exactly: one
gradient evaluation performs the simultaneous update of both players, and
`aejax.core.optim.per_module_optimizer` applies each player's own optimiser to its subtree.
Reported `loss` is loss_vae; `elbo` is the β = 1 bound. Nats per image, batch mean.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import optax.losses

from aejax.core import optim
from aejax.core.distributions import kl_divergence
from aejax.core.options import Option, non_negative
from aejax.models import discriminator as critic
from aejax.objectives.likelihoods import likelihood
from aejax.objectives.vae import BETA, build_vae, elbo_metrics, vae_variant

JOINT, PRODUCT = 0, 1  # discriminator classes: a sample of q(z), of Π_d q(z_d)
DISCRIMINATOR_ADAM_B1, DISCRIMINATOR_ADAM_B2 = 0.5, 0.9  # Kim & Mnih 2018, Appendix


class FactorVAEModel(nn.Module):
    """A VAE and a discriminator on its codes, in one params tree ('vae', 'discriminator')."""
    vae: nn.Module
    discriminator: nn.Module

    def encode(self, x):
        return self.vae.encode(x)

    def decode(self, z):
        return self.vae.decode(z)

    def discriminate(self, z):
        """Logits [B, 2] of (JOINT, PRODUCT)."""
        return self.discriminator(z)

    def __call__(self, x, key: jax.Array):
        out, (mean, logvar, z) = self.vae(x, key)
        return out, (mean, logvar, z), self.discriminate(z)


def build_factor_vae(config, image_shape):
    discriminator = critic.build_discriminator(config, num_logits=2, activation="leaky_relu")
    return FactorVAEModel(build_vae(config, image_shape), discriminator)


def permute_dims(key: jax.Array, z: jax.Array) -> jax.Array:
    """Each column of z [B, D] shuffled by its own permutation of the batch.

    Marginals stay those of q(z_d); the dependence between dimensions is destroyed,
    so the rows are (approximately) samples of Π_d q(z_d).
    """
    keys = jax.random.split(key, z.shape[1])
    order = jax.vmap(lambda k: jax.random.permutation(k, z.shape[0]))(keys)  # [D, B]
    return jnp.take_along_axis(z, order.T, axis=0)


def stop_gradient_under(params, module: str):
    """`params` with the subtree of top-level `module` cut off from differentiation."""
    inner = dict(params["params"])
    inner[module] = jax.lax.stop_gradient(inner[module])
    return {**params, "params": inner}


def make_factor_vae_loss(model, config):
    beta, gamma = config.beta, config.tc_weight

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        sample_key, permute_key = jax.random.split(key)
        # The VAE player: D is a fixed critic here.
        out, (mean, logvar, z), logits = model.apply(
            stop_gradient_under(params, "discriminator"), x, sample_key)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        kl_per_dim = kl_divergence(mean, logvar)
        total_correlation = jnp.mean(logits[:, JOINT] - logits[:, PRODUCT])
        vae_loss = jnp.mean(reconstruction + beta * jnp.sum(kl_per_dim, axis=-1)) + gamma * total_correlation
        # The discriminator player: the codes are fixed data here.
        z = jax.lax.stop_gradient(z)
        both = model.apply(params, jnp.concatenate([z, permute_dims(permute_key, z)]),
                           method="discriminate")
        labels = jnp.repeat(jnp.array([JOINT, PRODUCT]), z.shape[0])
        d_loss = jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(both, labels))
        metrics = {
            "loss": vae_loss,
            "total_correlation": total_correlation,
            "discriminator_loss": d_loss,
            "discriminator_accuracy": jnp.mean(jnp.argmax(both, axis=-1) == labels),
            **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x),
        }
        return vae_loss + d_loss, metrics

    return loss_fn


def make_factor_vae_optimizer(config, total_steps):
    discriminator = optax.adam(config.discriminator_learning_rate,
                               b1=DISCRIMINATOR_ADAM_B1, b2=DISCRIMINATOR_ADAM_B2)
    return optim.per_module_optimizer(optim.make_optimizer(config, total_steps),
                                      {"discriminator": discriminator})


OPTIONS = {
    "beta": BETA,
    "tc_weight": Option(40.0, non_negative, "γ, the weight of the discriminator's TC estimate"),
    **critic.OPTIONS,
}

VARIANTS = (vae_variant("factor_vae", make_factor_vae_loss, OPTIONS, build_model=build_factor_vae,
                        make_optimizer=make_factor_vae_optimizer),)
