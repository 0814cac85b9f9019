"""Codes matched to the prior by a kernel MMD: WAE-MMD and InfoVAE (MMD-VAE).

Both penalise the maximum mean discrepancy between the batch's codes, samples of
the aggregate posterior q(z) = E_p(x) q(z|x), and as many samples of the prior
p(z) = N(0, I), estimated without bias (`aejax.core.distributions.mmd_unbiased`).
Unlike the VAE's KL, which pulls every q(z|x) towards p(z), the MMD only asks the
codes *as a whole* to look like the prior, so codes of different images may stay
apart.

* "wae_mmd" (Tolstikhin et al. 2018, Wasserstein autoencoder, Algorithm 2): a
  deterministic encoder z = f(x) and

      loss = c(x, g(f(x))) + λ · MMD²_k(q(z), p(z)),

  c the squared error ‖x − x̂‖² on the decoder's mean image (`wae_cost`
  "squared_error", the paper's) or −log p(x | x̂) of `config.likelihood`
  ("likelihood"). k is the inverse multiquadratics kernel summed over scales,
  k(z, z') = Σ_s C_s / (C_s + ‖z − z'‖²) with C_s = 2·D·σ²·s, σ² = 1 the
  prior's variance and s over `mmd_scales` (the paper's 0.1 … 10).
* "info_vae" (Zhao et al. 2019, InfoVAE, eq. 7 with the KL between q(z) and p(z)
  replaced by the MMD): the Gaussian VAE and

      loss = −E_q[log p(x|z)] + (1 − α)·KL(q(z|x) ‖ p(z)) + (α + λ − 1)·MMD²_k(q(z), p(z)),

  k the RBF kernel exp(−‖z − z'‖² / (2h²)) with 2h² = 2·D·s, s = `info_rbf_scale`
  (0.5 gives exp(−‖z − z'‖²/D), the kernel of Zhao et al.'s MMD-VAE code), z one
  draw from q(z|x) per image. α = 1 drops the per-image KL (the MMD-VAE);
  α = 0, λ = 1 is the VAE. α + λ − 1 ≥ 0 keeps the MMD a penalty.

Nats (or squared error) per image, batch mean; the MMD² is per batch. The
weights are read as numbers in arithmetic only, so populations (vmapped sweeps)
can pass them per member.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from aejax.core.distributions import flat_pixels, imq_kernel, kl_divergence, mmd_unbiased, rbf_kernel, sum_pixels
from aejax.core.errors import ConfigError
from aejax.core.options import Option, non_negative, number, one_of, positive, rule
from aejax.objectives.ae import autoencoder_variant
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics
from aejax.objectives.vae import elbo_metrics, vae_variant

PRIOR_VARIANCE = 1.0  # σ² of p(z) = N(0, σ² I): the scale the kernels are sized by

COSTS = ("squared_error", "likelihood")

positive_numbers = rule("a tuple of positive numbers, e.g. (0.1, 1.0, 10.0)",
                        lambda v: isinstance(v, (tuple, list)) and len(v) > 0
                        and all(isinstance(s, (int, float)) and s > 0 for s in v))

WAE_OPTIONS = {
    "wae_lambda": Option(10.0, non_negative, "λ, the weight of the MMD between codes and prior (wae_mmd)"),
    "wae_cost": Option("squared_error", one_of(COSTS),
                       "squared_error (‖x − x̂‖², the paper's) | likelihood (−log p(x|x̂) of config.likelihood)"),
    "mmd_scales": Option((0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), positive_numbers,
                         "s of the IMQ kernel's scales C = 2·latent_dim·σ²·s, summed (wae_mmd)"),
}
INFO_OPTIONS = {
    "info_alpha": Option(0.0, number, "α of InfoVAE: the per-image KL is weighted 1 − α"),
    "info_lambda": Option(1000.0, positive, "λ of InfoVAE: the MMD is weighted α + λ − 1"),
    "info_rbf_scale": Option(0.5, positive, "s of the RBF kernel exp(−‖z − z'‖²/(2·latent_dim·s)) (info_vae)"),
}


def imq_scales(config):
    """C_s = 2·D·σ²·s for each s of `mmd_scales` (the paper's C = 2·D·σ², summed over scales as in its code)."""
    return tuple(2.0 * config.latent_dim * PRIOR_VARIANCE * s for s in config.mmd_scales)


def prior_mmd(key, z, kernel):
    """Unbiased MMD² between codes z [B, D] and B fresh samples of N(0, σ² I)."""
    z_prior = jnp.sqrt(PRIOR_VARIANCE) * jax.random.normal(key, z.shape, z.dtype)
    return mmd_unbiased(z, z_prior, kernel)


def make_wae_loss(model, config):
    kernel = imq_kernel(imq_scales(config))

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        out, z = model.apply(params, x)
        p_x = likelihood(params, config)
        x_mean = p_x.mean(out)
        if config.wae_cost == "squared_error":
            cost = sum_pixels(jnp.square(flat_pixels(x) - flat_pixels(x_mean)))
        else:
            cost = -p_x.log_prob(out, x)
        mmd = prior_mmd(key, z, kernel)
        loss = jnp.mean(cost) + config.wae_lambda * mmd
        return loss, {"loss": loss, "reconstruction": jnp.mean(cost), "mmd": mmd,
                      **reconstruction_metrics(x_mean, x)}

    return loss_fn


def info_vae_weights(config):
    """(1 − α, α + λ − 1): the weights of the per-image KL and of the MMD."""
    return 1.0 - config.info_alpha, config.info_alpha + config.info_lambda - 1.0


def make_info_vae_loss(model, config):
    mmd_weight = info_vae_weights(config)[1]
    if isinstance(mmd_weight, (int, float)) and mmd_weight < 0:  # a population's traced values are not checked
        raise ConfigError(f"config.info_alpha={config.info_alpha} with config.info_lambda={config.info_lambda} "
                          f"weighs the MMD by α + λ − 1 = {mmd_weight:g} < 0: raise info_lambda to ≥ 1 − α")
    kernel = rbf_kernel(jnp.sqrt(config.latent_dim * config.info_rbf_scale))  # 2h² = 2·D·s

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        sample_key, prior_key = jax.random.split(key)
        out, (mean, logvar, z) = model.apply(params, x, sample_key)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        kl_per_dim = kl_divergence(mean, logvar)
        kl_weight, mmd_weight = info_vae_weights(config)
        mmd = prior_mmd(prior_key, z, kernel)
        kl = jnp.sum(kl_per_dim, axis=-1)
        loss = jnp.mean(reconstruction + kl_weight * kl) + mmd_weight * mmd
        return loss, {"loss": loss, "mmd": mmd,
                      **elbo_metrics(reconstruction, kl_per_dim, p_x.mean(out), x)}

    return loss_fn


VARIANTS = (
    autoencoder_variant("wae_mmd", make_wae_loss, options=WAE_OPTIONS, generative=True),
    vae_variant("info_vae", make_info_vae_loss, INFO_OPTIONS),
)
