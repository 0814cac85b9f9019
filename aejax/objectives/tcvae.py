"""β-TCVAE (Chen et al. 2018): the KL term of the ELBO split into three parts, each weighted.

Averaged over the data, the KL term of the ELBO decomposes as

    E_p(x) KL(q(z|x) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ Π_d q(z_d)) + Σ_d KL(q(z_d) ‖ p(z_d))
                               index-code MI   total correlation (TC)   dimension-wise KL

where q(z) = (1/N) Σ_n q(z | x_n) is the aggregate posterior over the N training
images. β-TCVAE minimises

    loss = −E_q[log p(x|z)] + α·MI + β·TC + γ·dim-KL       (α = γ = 1 by default)

so with α = β = γ = 1 it is the VAE (a one-sample estimate of the negative ELBO).
`config.beta` is β, `config.mi_weight` α, `config.dim_kl_weight` γ. Everything is in
nats per image, averaged over the batch; the reported `elbo` is the usual analytic
β = 1 bound, so runs compare with the "vae" variant.

The terms need log q(z) and log q(z_d) at samples z_i ~ q(z|x_i); both are estimated on
the minibatch {x_1..x_M} as log Σ_j w_ij q(z_i | x_j) (per dimension for q(z_d)), with
weights `TC_ESTIMATORS[config.tc_estimator](M, N)`:

* "mss" (minibatch stratified sampling): w_ii = 1/N, w_ij = (N−1)/(N(M−1)) for j ≠ i.
  q(z_i) = (1/N) q(z_i|x_i) + (1/N) Σ_{n≠i} q(z_i|x_n), and the other M−1 batch members
  are uniform draws from the rest of the data, so the weighted sum is an unbiased
  estimate of q(z_i) (its log is biased only by Jensen). Chen et al.'s stratification
  gives one of the M−1 others a different weight, which changes nothing in expectation;
  equal weights have the lower variance.
* "mws" (minibatch weighted sampling, Chen et al.'s eq. for E log q(z)): every
  w_ij = 1/(NM). The weights sum to 1/N, so log q(z) is estimated low (by ≈ log N when
  the posteriors overlap, ≈ log M when they do not); the offsets largely cancel in the
  gradient but the reported MI/TC/dim-KL are shifted. Kept for comparison with the paper.

Either way MI + TC + dim-KL = log q(z|x) − log p(z) exactly per sample (the estimates
telescope), i.e. the one-sample Monte Carlo KL.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from aejax.core.distributions import gaussian_log_prob, kl_divergence, standard_normal_log_prob
from aejax.core.options import Option, non_negative, one_of
from aejax.data.catalog import dataset_info
from aejax.objectives.likelihoods import likelihood
from aejax.objectives.vae import BETA, elbo_metrics, vae_variant


def _mss_log_weights(batch_size: int, dataset_size: int) -> np.ndarray:
    m, n = batch_size, dataset_size
    other = math.log((n - 1) / (n * (m - 1))) if m > 1 else -math.inf
    log_w = np.full((m, m), other)
    np.fill_diagonal(log_w, -math.log(n))
    return log_w


def _mws_log_weights(batch_size: int, dataset_size: int) -> np.ndarray:
    return np.full((batch_size, batch_size), -math.log(dataset_size * batch_size))


# Name -> (batch size M, dataset size N) -> log w [M, M]; row i weighs q(z_i | x_j).
TC_ESTIMATORS: dict[str, Callable[[int, int], np.ndarray]] = {
    "mss": _mss_log_weights,
    "mws": _mws_log_weights,
}

OPTIONS = {
    "beta": BETA,
    "mi_weight": Option(1.0, non_negative, "α, the weight of the index-code MI"),
    "dim_kl_weight": Option(1.0, non_negative, "γ, the weight of the dimension-wise KL"),
    "tc_estimator": Option("mss", one_of(TC_ESTIMATORS), "mss | mws (minibatch stratified / weighted sampling)"),
}


def aggregate_posterior_log_probs(z, mean, logvar, log_weights):
    """Minibatch estimates of log q(z_i) [M] and log q(z_id) [M, D] at samples z [M, D].

    q(z_i) ≈ Σ_j w_ij q(z_i | x_j) with q(·|x_j) = N(mean_j, diag exp(logvar_j)).
    """
    log_q_pairs = gaussian_log_prob(z[:, None, :], mean[None, :, :], logvar[None, :, :])  # [i, j, d]
    log_w = jnp.asarray(log_weights, z.dtype)
    log_qz = jax.nn.logsumexp(log_w + jnp.sum(log_q_pairs, axis=-1), axis=1)
    log_qz_dims = jax.nn.logsumexp(log_w[:, :, None] + log_q_pairs, axis=1)
    return log_qz, log_qz_dims


def kl_decomposition(z, mean, logvar, log_weights):
    """Per-sample (MI, TC, dim-KL) estimates [M] each; they sum to log q(z|x) − log p(z)."""
    log_qz, log_qz_dims = aggregate_posterior_log_probs(z, mean, logvar, log_weights)
    log_qz_given_x = jnp.sum(gaussian_log_prob(z, mean, logvar), axis=-1)
    log_prod_qz = jnp.sum(log_qz_dims, axis=-1)
    mutual_info = log_qz_given_x - log_qz
    total_correlation = log_qz - log_prod_qz
    dim_kl = log_prod_qz - standard_normal_log_prob(z)
    return mutual_info, total_correlation, dim_kl


def train_set_size(config) -> int:
    """N of q(z) = (1/N) Σ_n q(z|x_n): the training examples the run sees (set by the trainer)."""
    if config.get("num_train_examples"):
        return int(config.num_train_examples)
    return int(dataset_info(config.dataset).splits["train"])


def make_tcvae_loss(model, config):
    alpha, beta, gamma = config.mi_weight, config.beta, config.dim_kl_weight
    weights_of = TC_ESTIMATORS[config.tc_estimator]
    dataset_size = train_set_size(config)

    def loss_fn(params, batch, key, step):
        del step
        x = batch["image"]
        out, (mean, logvar, z) = model.apply(params, x, key)
        p_x = likelihood(params, config)
        reconstruction = -p_x.log_prob(out, x)
        mutual_info, total_correlation, dim_kl = kl_decomposition(
            z, mean, logvar, weights_of(x.shape[0], dataset_size))
        loss = jnp.mean(reconstruction + alpha * mutual_info + beta * total_correlation + gamma * dim_kl)
        return loss, {
            "loss": loss,
            "mutual_info": jnp.mean(mutual_info),
            "total_correlation": jnp.mean(total_correlation),
            "dim_kl": jnp.mean(dim_kl),
            **elbo_metrics(reconstruction, kl_divergence(mean, logvar), p_x.mean(out), x),
        }

    return loss_fn


VARIANTS = (vae_variant("tcvae", make_tcvae_loss, OPTIONS),)
