"""VQ-VAE (van den Oord et al. 2017): a grid of discrete codes, straight-through gradients, an EMA codebook.

The encoder gives a grid of vectors z_e(x) (aejax.models.vq); each is replaced
by its nearest codebook vector e_k, k = argmin_j ‖z_e − e_j‖², and the decoder
reads z_q = e_k through the straight-through estimator z_e + sg[z_q − z_e], so
the reconstruction gradient reaches the encoder as if quantisation were the
identity. Per image (sums over pixels, grid positions and the D code dims),
batch mean:

    loss = −log p(x | z_q) + [codebook_loss="loss"] ‖sg[z_e] − e‖² + β ‖z_e − sg[e]‖²

`codebook_loss` (config) picks how the codebook learns:

* "ema" (default; the paper's appendix A.1): no codebook term; after each
  gradient step the codebook follows exponential moving averages of the
  counts and sums of the vectors assigned to each code,
      N_k ← γ N_k + (1 − γ) n_k,   m_k ← γ m_k + (1 − γ) Σ_{j: k(j)=k} z_e,j,
      e_k = m_k / N̂_k,   N̂_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j
  (Laplace smoothing of the counts, so an unused code never divides by 0).
  N and m are optimiser state, not parameters: the variant's optimiser state
  is {"optimizer": the config's optimiser (codebook frozen), "ema": {N, m}}
  and its `make_update` applies the gradient step, then the EMA. They start at
  N_k = 1, m_k = e_k (so e = m / N̂ is the initial codebook), checkpoint with
  the train state and stack like any state in a population.
* "loss": the codebook is a parameter trained by the ‖sg[z_e] − e‖² term.

Metrics: `commitment_loss` (‖z_e − z_q‖² per image; the codebook term has the
same value), `perplexity` exp(H) of the batch's code usage (K when uniform) and
`dead_codes` (codes no vector of the batch used). Sampling needs a prior over
code grids learned afterwards (`python -m aejax.prior`, Variant.grid_prior).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from aejax.core import optim
from aejax.core.errors import ConfigError
from aejax.core.options import Option, non_negative, one_of, positive, positive_integer, rule
from aejax.models import vq
from aejax.objectives.ae import autoencoder_variant
from aejax.objectives.likelihoods import likelihood, reconstruction_metrics

CODEBOOK_LOSSES = ("ema", "loss")

OPTIONS = {
    "num_codes": Option(512, positive_integer, "vq_vae: codebook size K (latent_dim is each code's size D)"),
    "commitment_weight": Option(0.25, non_negative, "vq_vae: β of the commitment term ‖z_e − sg[e]‖²"),
    "codebook_loss": Option("ema", one_of(CODEBOOK_LOSSES),
                            "vq_vae: codebook by moving averages (ema) or by the ‖sg[z_e] − e‖² term (loss)"),
    "ema_decay": Option(0.99, rule("a number in [0, 1)", lambda v: isinstance(v, (int, float)) and 0 <= v < 1),
                        "vq_vae: γ of the EMA codebook"),
    "ema_epsilon": Option(1e-5, positive, "vq_vae: Laplace smoothing ε of the EMA code counts"),
}


def build_vq_vae(config, image_shape):
    if config.architecture != "conv":
        raise ConfigError("model 'vq_vae' encodes to a grid of codes with convs: set config.architecture='conv'")
    channels = tuple(config.conv_channels)
    encoder = vq.GridEncoder(channels, config.conv_kernel_size, config.latent_dim, config.activation)
    decoder = vq.GridDecoder(channels, config.conv_kernel_size, tuple(image_shape), config.activation,
                             config.get("conv_upsample", "subpixel"))
    return vq.VQVAE(encoder, decoder, config.num_codes, config.latent_dim)


def per_image_sum(x):
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def make_loss_terms(model, config):
    """(params, batch, key, step) → (loss, (metrics, (z_e, indices))): the loss, and what the EMA reads."""
    codebook_term = config.codebook_loss == "loss"

    def loss_terms(params, batch, key, step):
        del key, step
        x = batch["image"]
        out, z_e, z_q, indices = model.apply(params, x)
        p_x = likelihood(params, config)
        reconstruction = jnp.mean(-p_x.log_prob(out, x))
        commitment = jnp.mean(per_image_sum(jnp.square(z_e - jax.lax.stop_gradient(z_q))))
        loss = reconstruction + config.commitment_weight * commitment
        if codebook_term:
            loss = loss + jnp.mean(per_image_sum(jnp.square(jax.lax.stop_gradient(z_e) - z_q)))
        counts = vq.code_counts(indices, config.num_codes)
        metrics = {"loss": loss, "reconstruction": reconstruction, "commitment_loss": commitment,
                   "perplexity": vq.perplexity(counts), "dead_codes": vq.dead_codes(counts),
                   **reconstruction_metrics(p_x.mean(out), x)}
        return loss, (metrics, (jax.lax.stop_gradient(z_e), indices))

    return loss_terms


def make_vq_loss(model, config):
    loss_terms = make_loss_terms(model, config)

    def loss_fn(params, batch, key, step):
        loss, (metrics, _) = loss_terms(params, batch, key, step)
        return loss, metrics

    return loss_fn


# ------------------------------------------------------------ EMA codebook ----

def ema_init(codebook):
    """N_k = 1 and m_k = e_k: the EMA state whose codebook m / N̂ is `codebook`."""
    return {"cluster_size": jnp.ones(codebook.shape[0], jnp.float32), "embed_sum": codebook}


def ema_update(state, z_e, indices, decay, epsilon):
    """One EMA step from the batch's vectors z_e [..., D] and their codes → (new state, new codebook)."""
    num_codes = state["cluster_size"].shape[0]
    flat = z_e.reshape(-1, z_e.shape[-1])
    one_hot = jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=flat.dtype)
    cluster_size = decay * state["cluster_size"] + (1 - decay) * jnp.sum(one_hot, axis=0)
    embed_sum = decay * state["embed_sum"] + (1 - decay) * one_hot.T @ flat
    total = jnp.sum(cluster_size)
    smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total
    return {"cluster_size": cluster_size, "embed_sum": embed_sum}, embed_sum / smoothed[:, None]


def codebook_of(params):
    return params["params"]["quantizer"]["codebook"]


def with_codebook(params, codebook):
    inner = dict(params["params"])
    inner["quantizer"] = {**inner["quantizer"], "codebook": codebook}
    return {**params, "params": inner}


def parameter_optimizer(config, total_steps):
    """The config's optimiser; with the EMA form it leaves the codebook (module `quantizer`) to the EMA."""
    tx = optim.make_optimizer(config, total_steps)
    if config.codebook_loss == "ema":
        return optim.per_module_optimizer(tx, {"quantizer": optax.set_to_zero()})
    return tx


def make_optimizer(config, total_steps):
    """Holds {"optimizer": state of `parameter_optimizer`, "ema": {N, m}} (no "ema" for the loss form)."""
    tx = parameter_optimizer(config, total_steps)
    ema = config.codebook_loss == "ema"

    def init(params):
        state = {"optimizer": tx.init(params)}
        if ema:
            state["ema"] = ema_init(codebook_of(params))
        return state

    def update(grads, state, params=None):
        raise TypeError("the VQ-VAE updates its codebook by moving averages: use its make_update")

    return optax.GradientTransformation(init, update)


def make_update(model, config, total_steps):
    """One gradient step of the loss; then, for the EMA form, the EMA of the batch's assignments."""
    loss_terms = make_loss_terms(model, config)
    tx = parameter_optimizer(config, total_steps)
    ema = config.codebook_loss == "ema"

    def update(params, opt_state, batch, key, step):
        (_, (metrics, (z_e, indices))), grads = jax.value_and_grad(loss_terms, has_aux=True)(
            params, batch, key, step)
        updates, inner = tx.update(grads, opt_state["optimizer"], params)
        params, new_state = optax.apply_updates(params, updates), {"optimizer": inner}
        if ema:
            new_state["ema"], codebook = ema_update(opt_state["ema"], z_e, indices, config.ema_decay,
                                                    config.ema_epsilon)
            params = with_codebook(params, codebook)
        return params, new_state, metrics

    return update


VARIANTS = (autoencoder_variant("vq_vae", make_vq_loss, build_vq_vae, options=OPTIONS,
                                make_optimizer=make_optimizer, make_update=make_update, grid_prior=True),)
