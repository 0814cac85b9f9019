"""Conditional VAE (Sohn et al. 2015): the ELBO of p(x | y), with the class label y given to both networks.

    log p(x | y) ≥ E_q(z|x,y)[log p(x | z, y)] − KL(q(z | x, y) ‖ p(z)),   p(z) = N(0, I)

(the paper's "CVAE" with a prior that does not depend on y, which lets every
class share one latent space: z carries what the label does not, the style).
Trained like the VAE (`aejax.objectives.vae`: β, KL warm-up, free bits), on
batches that carry `label` (every split does: aejax.data). The module is
`aejax.models.conditional.ConditionalVAE`; `aejax.load(workdir)` then needs
`labels=` to encode, decode and reconstruct, and `sample(key, n, labels=...)`
draws z ~ N(0, I) and decodes it with the given classes (uniformly drawn
classes when none are given).
"""
from __future__ import annotations

import jax.numpy as jnp

from aejax import models
from aejax.core.distributions import kl_divergence
from aejax.core.errors import ConfigError
from aejax.core.variant import Variant
from aejax.data.catalog import dataset_info
from aejax.models.autoencoders import GaussianEncoder
from aejax.models.conditional import ConditionalVAE
from aejax.objectives.likelihoods import learns_decoder_variance, likelihood
from aejax.objectives.vae import VAE_OPTIONS, elbo_metrics, free_bits_kl, kl_weight


def num_classes(config) -> int:
    classes = dataset_info(config.dataset).num_classes
    if not classes:
        raise ConfigError(f"model 'cvae' conditions on the class label, and config.dataset={config.dataset!r} "
                          "has none; use a labelled dataset (fashion_mnist, mnist, digits)")
    return classes


def build_cvae(config, image_shape):
    encoder = GaussianEncoder(models.build("trunk", config, image_shape), config.latent_dim)
    return ConditionalVAE(encoder, models.build("decoder", config, image_shape), num_classes(config),
                          spatial_condition=config.architecture == "conv",
                          learn_decoder_logvar=learns_decoder_variance(config))


def conditional_elbo_terms(model, config, params, x, labels, key):
    """Per-example −log p(x | z, y) and per-dimension KL(q(z | x, y) ‖ N(0, I)), one z ~ q."""
    out, (mean, logvar, _) = model.apply(params, x, labels, key)
    p_x = likelihood(params, config)
    return out, -p_x.log_prob(out, x), kl_divergence(mean, logvar), p_x


def make_conditional_elbo(model, config):
    free_bits = config.get("free_bits", 0.0)

    def loss_fn(params, batch, key, step):
        x, labels = batch["image"], batch["label"]
        out, reconstruction, kl_per_dim, p_x = conditional_elbo_terms(model, config, params, x, labels, key)
        beta_t = kl_weight(config, step)
        loss = jnp.mean(reconstruction) + beta_t * free_bits_kl(kl_per_dim, free_bits)
        return loss, {"loss": loss, "kl_weight": beta_t,
                      **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x)}

    return loss_fn


VARIANTS = (Variant(name="cvae", build_model=build_cvae, make_loss=make_conditional_elbo, likelihood=likelihood,
                    init_inputs=lambda config, x, key: (x, jnp.zeros((x.shape[0],), jnp.int32), key),
                    options=VAE_OPTIONS, probabilistic_encoder=True, generative=True, conditional=True),)
