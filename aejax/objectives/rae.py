"""Regularised autoencoder (Ghosh et al. 2020, "From variational to deterministic autoencoders").

A deterministic z = E(x), x̂ = D(z), trained on

    L_RAE = L_REC + β · L_z + λ · L_REG,   L_z = ½‖z‖²,

where L_z keeps the codes near the origin (the only part of the VAE's KL that
survives without noise) and L_REG makes the decoder smooth, so codes between
training codes still decode to images. `rae_regularizer` picks L_REG:

* "l2": weight decay on the decoder, ‖θ_D‖² (all decoder params);
* "gp": the gradient penalty ‖∇_z D(z)‖², here the squared Frobenius norm of
  the Jacobian of the decoder's mean image w.r.t. z at z = E(x), one JVP per
  latent dimension (forward mode: latent_dim ≪ pixels), per example.

β = `rae_code_weight`, λ = `rae_regularizer_weight`. L_REC is −log p(x | x̂) in
nats per image, as for every AE here; β, λ multiply the batch means.

An RAE has no prior: its generative model comes from ex-post density
estimation, a Gaussian mixture fitted to the training codes after training
(`python -m aejax.fit_prior`, aejax.evaluation.ex_post_density), which then
`aejax.load(workdir).sample` draws from.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from aejax.core.options import Option, non_negative, one_of
from aejax.objectives.ae import autoencoder_variant, reconstruction_terms
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics


def code_penalty(z):
    """L_z = ½‖z‖² per example [B]."""
    return 0.5 * jnp.sum(jnp.square(z), axis=-1)


def decoder_weight_decay(model, config, params, x, z):
    """‖θ_D‖²: the sum of squares of every decoder parameter (one number; the same for each example)."""
    del model, config, x, z
    leaves = jax.tree_util.tree_leaves(params["params"]["decoder"])
    return sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)


def decoder_gradient_penalty(model, config, params, x, z):
    """‖∂D(z)/∂z‖²_F per example [B], D(z) the decoder's mean image, by one JVP per latent dimension."""
    del x
    p_x = likelihood(params, config)

    def mean_image(codes):
        return p_x.mean(model.apply(params, codes, method="decode"))

    def directional(direction):   # ∂D/∂z_d for every example at once: the batch is independent
        tangent = jnp.broadcast_to(direction, z.shape)
        return jax.jvp(mean_image, (z,), (tangent,))[1]

    columns = jax.vmap(directional)(jnp.eye(z.shape[-1], dtype=z.dtype))   # [latent, B, H, W, C]
    return jnp.sum(jnp.square(columns).reshape(z.shape[-1], z.shape[0], -1), axis=(0, 2))


REGULARIZERS = {"l2": decoder_weight_decay, "gp": decoder_gradient_penalty}

OPTIONS = {
    "rae_regularizer": Option("l2", one_of(REGULARIZERS), "L_REG of the RAE: l2 (decoder weight decay) | "
                                                          "gp (gradient penalty ‖∇_z D(z)‖²)"),
    "rae_code_weight": Option(1.0, non_negative, "β of the RAE's ½‖z‖² code penalty"),
    "rae_regularizer_weight": Option(1e-3, non_negative, "λ of the RAE's decoder regulariser"),
}


def make_rae_loss(model, config):
    regularizer = REGULARIZERS[config.rae_regularizer]

    def loss_fn(params, batch, key, step):
        del key, step
        x = batch["image"]
        reconstruction, z, x_mean = reconstruction_terms(model, config, params, x)
        l_z = jnp.mean(code_penalty(z))
        l_reg = jnp.mean(regularizer(model, config, params, x, z))
        loss = jnp.mean(reconstruction) + config.rae_code_weight * l_z + config.rae_regularizer_weight * l_reg
        return loss, {"loss": loss, "reconstruction": jnp.mean(reconstruction), "code_penalty": l_z,
                      "decoder_regularizer": l_reg, **reconstruction_metrics(x_mean, x)}

    return loss_fn


VARIANTS = (autoencoder_variant("rae", make_rae_loss, options=OPTIONS),)
