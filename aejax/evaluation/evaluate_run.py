"""Evaluate a trained run: reconstruction, likelihood, latent usage, clustering, probes.

`evaluate_run(workdir)` restores the run (`aejax.training.restore.load`) and
returns a report (what `python -m aejax.evaluate` writes to `eval.json`). Everything
is driven by the variant's registry fields, never by its name:

* every variant: reconstruction error of decode(code(x)) on the test split;
  k-means / N2D clustering of the codes and a linear probe on them, with raw
  pixels and PCA of the same dimension as baselines;
* `probabilistic_encoder` (the VAE family): ELBO and the K-sample
  importance-weighted log p(x) (aejax.evaluation.likelihood), KL per latent
  dimension and active units (Burda et al. 2016);
* a dataset with ground-truth factors (dSprites): the disentanglement metrics
  (aejax.evaluation.factor_scores).

Units: nats per image (log-densities summed over pixels and latent
dimensions, averaged over test images); bits/dim = −log p(x) / (D ln 2).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from typing import Any, Callable

import numpy as np
from absl import flags

from aejax.core import timing
from aejax.core.batching import map_batches
from aejax.core.errors import ConfigError
from aejax.data.catalog import dataset_info
from aejax.evaluation import clustering, factor_scores, sample_quality
from aejax.evaluation.inputs import DATA_CONVENTIONS, EvalData, codes_of, encode_all, evaluation_split, load_eval_data
from aejax.evaluation.feature_classifier import RECIPES
from aejax.evaluation.likelihood import likelihood_estimates, likelihood_summary
from aejax.training.restore import load
from aejax.core.files import atomic_write
from aejax.training.workdir import OUTPUT_ROOM, check_writable

# name -> what it is, with its unit; the order is the order of the printed table.
METRICS = {
    "recon_mse_per_pixel": "MSE per pixel of decode(code(x)) vs x (the evaluation data)",
    "recon_mse_per_pixel_grey": "MSE per pixel vs the grey-level image (comparable with PCA)",
    "recon_bce_nats": "Bernoulli cross-entropy of decode(code(x)) vs x, nats/image",
    "elbo": "ELBO (β = 1) with K samples of q, nats/image",
    "log_px_iw": "log p(x), K-sample importance-weighted estimate, nats/image",
    "iw_gap": "log p(x) estimate − ELBO, nats/image",
    "bpd_elbo": "−ELBO in bits/dim",
    "bpd_iw": "−log p(x) estimate in bits/dim",
    "reconstruction_nll": "E_q[−log p(x|z)], nats/image (distortion)",
    "kl": "KL(q(z|x) ‖ p(z)), nats/image (rate; Monte Carlo for a variant with its own prior or posterior)",
    "active_units": "latent dims with Cov_x(E_q[z_d|x]) > threshold",
    "kmeans_codes_accuracy": "k-means on codes: accuracy (Hungarian)",
    "kmeans_codes_nmi": "k-means on codes: NMI",
    "kmeans_codes_ari": "k-means on codes: ARI",
    "n2d_accuracy": "codes → UMAP → k-means (N2D): accuracy",
    "n2d_nmi": "codes → UMAP → k-means (N2D): NMI",
    "n2d_ari": "codes → UMAP → k-means (N2D): ARI",
    "kmeans_pca_accuracy": "k-means on PCA(pixels), same dim: accuracy",
    "kmeans_pca_nmi": "k-means on PCA(pixels), same dim: NMI",
    "kmeans_pca_ari": "k-means on PCA(pixels), same dim: ARI",
    "kmeans_pixels_accuracy": "k-means on raw pixels: accuracy",
    "kmeans_pixels_nmi": "k-means on raw pixels: NMI",
    "kmeans_pixels_ari": "k-means on raw pixels: ARI",
    "probe_codes_accuracy": "logistic regression on frozen codes: test accuracy",
    "probe_pca_accuracy": "logistic regression on PCA(pixels), same dim: test accuracy",
    **sample_quality.METRICS,
}


# eval.json's "conditional" field: what the figures of a conditional variant (cvae) are of.
CONDITIONAL_NOTE = ("conditional model: every encoding and decoding is given the image's true class y, so "
                    "log_px_iw, elbo, reconstruction_nll and kl are of log p(x | y) (q(z | x, y), p(z) = N(0, I), "
                    "p(x | z, y)), not log p(x); the codes (clustering, probe, active units) are of q(z | x, y); "
                    "samples decode z ~ N(0, I) with uniformly drawn classes")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What to compute, and how much of it; the defaults are the full evaluation."""
    num_importance_samples: int = 1000
    samples_per_chunk: int = 100       # memory ~ samples_per_chunk × batch_size decoder outputs
    batch_size: int = 100
    active_unit_threshold: float = 0.01
    clustering: bool = True
    n2d: bool = True
    baselines: bool = True
    probe: bool = True
    max_examples: int = 0              # 0 = the whole split
    seed: int = 0
    num_quality_samples: int = 10_000  # generative variants on Fashion-MNIST; 0 skips sample quality
    feature_classifier: str = "default"  # the recipe of the sample-quality features (feature_classifier.RECIPES)


# ------------------------------------------------------------- metrics ----

def reconstruction_metrics(trained, data: EvalData, codes: np.ndarray, batch_size: int) -> dict:
    """Distortion of decode(code(x)): the same figure for every variant (a conditional one decodes with y)."""
    if trained.variant.conditional:
        recon = map_batches(lambda idx, i: trained.decode(codes[idx], labels=data.labels[idx]),
                            np.arange(len(codes)), batch_size)
    else:
        recon = map_batches(lambda z, i: trained.decode(z), codes, batch_size)
    p = np.clip(recon.astype(np.float64), 1e-6, 1 - 1e-6)
    x = data.x.astype(np.float64)
    bce = -np.sum((x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1), axis=1)
    metrics = {"recon_mse_per_pixel": float(np.mean(np.square(recon - data.x))),
               "recon_bce_nats": float(np.mean(bce))}
    if not np.array_equal(data.x, data.grey):
        metrics["recon_mse_per_pixel_grey"] = float(np.mean(np.square(recon - data.grey)))
    return metrics


def flat_codes(codes: np.ndarray) -> np.ndarray:
    """[N, latent_dim] codes as they are; a grid of codes (VQ-VAE: [N, h, w, D]) as one vector per image."""
    return codes.reshape(len(codes), -1)


def clustering_metrics(codes: np.ndarray, test: EvalData, num_classes: int,
                       pca_test: np.ndarray | None, options: EvalOptions, stage) -> dict:
    """k-means on the codes (directly, and via UMAP: N2D), on PCA codes and on raw pixels."""
    seed, metrics = options.seed, {}
    runs = [("kmeans_codes", "k-means on codes", lambda: codes)]
    if options.n2d:
        runs.append(("n2d", "N2D: UMAP of the codes, then k-means",
                     lambda: clustering.umap_codes(codes, dim=num_classes, seed=seed)))
    if pca_test is not None:
        runs.append(("kmeans_pca", f"k-means on PCA({pca_test.shape[1]}) of the pixels", lambda: pca_test))
    if options.baselines:
        runs.append(("kmeans_pixels", "k-means on raw pixels", lambda: test.grey))
    for prefix, name, features in runs:
        with stage(name):
            scores = clustering.clustering_scores(features(), test.labels, num_classes, seed=seed)
            metrics.update({f"{prefix}_{k}": v for k, v in scores.items()})
    return metrics


def probe_metrics(trained, train: EvalData, test: EvalData, codes: np.ndarray,
                  pca: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """Logistic regression on frozen codes (and on PCA codes of the same dimension)."""
    train_codes = flat_codes(codes_of(trained, encode_all(trained, train.x, 1000, train.labels)))
    metrics = {"probe_codes_accuracy": clustering.linear_probe_accuracy(
        train_codes, train.labels, codes, test.labels)}
    if pca is not None:
        metrics["probe_pca_accuracy"] = clustering.linear_probe_accuracy(
            pca[0], train.labels, pca[1], test.labels)
    return metrics


# --------------------------------------------------------------- report ----

@contextlib.contextmanager
def _timed(seconds: dict, name: str):
    """A progress line at the start and end of the step (and every 15 s between); its time into `seconds`."""
    with timing.stage(f"evaluate: {name}") as elapsed:
        yield
    seconds[name] = round(elapsed.seconds, 2)


def define_option_flags(flag_values: flags.FlagValues = flags.FLAGS) -> Callable[[], EvalOptions]:
    """The flags of `python -m aejax.evaluate` that set EvalOptions, on `flag_values`; returns their reader."""
    fv = dict(flag_values=flag_values)
    k = flags.DEFINE_integer("num_importance_samples", 1000, "K for the importance-weighted log p(x) (VAE family; "
                             "Burda et al. use 5000); 0 skips the likelihood part. Cost: linear in K; ~100 s for "
                             "the 10,000 test images at K=1000 on 2 CPU cores (canonical VAE).", lower_bound=0,
                             upper_bound=100_000, **fv)
    chunk = flags.DEFINE_integer("samples_per_chunk", 100, "Samples of q drawn at once (memory bound).",
                                 lower_bound=1, **fv)
    batch = flags.DEFINE_integer("batch_size", 100, "Test images per compiled call.", lower_bound=1, **fv)
    threshold = flags.DEFINE_float("active_unit_threshold", 0.01,
                                   "A latent dim is active if Cov_x(E_q[z_d|x]) exceeds this.", **fv)
    clustering_flag = flags.DEFINE_bool("clustering", True, "k-means/N2D clustering and linear probes (~1 min in all on 2 CPU cores for "
                                      "10,000 test images; the parts below).", **fv)
    n2d = flags.DEFINE_bool("n2d", True, "The codes → UMAP → k-means pipeline (~45 s for 10,000 codes on 2 CPU cores).", **fv)
    baselines = flags.DEFINE_bool("baselines", True, "Raw-pixel and PCA clustering/probe baselines (~8 s: PCA fit "
                                    "on train 4 s, k-means on pixels 3 s).", **fv)
    probe = flags.DEFINE_bool("probe", True, "Linear probe (logistic regression on frozen codes; ~8 s on "
                                "60,000 train codes).", **fv)
    max_examples = flags.DEFINE_integer("max_examples", 0, "Evaluate the first N examples (0 = all).",
                                        lower_bound=0, **fv)
    seed = flags.DEFINE_integer("seed", 0, "Seed of the q samples, k-means, UMAP and the prior samples.", **fv)
    quality = flags.DEFINE_integer("num_quality_samples", 10_000, "Prior samples scored against as many test images "
                                   "(fd_fmnist, precision/recall_fmnist; generative variants on Fashion-MNIST); "
                                   "0 skips them. Cost: 20-40 s for 10,000, plus training the classifier the first time (once; cached).", lower_bound=0, upper_bound=100_000, **fv)
    classifier = flags.DEFINE_enum("feature_classifier", "default", list(RECIPES),
                                   "Recipe of the Fashion-MNIST classifier whose features the sample-quality "
                                   "metrics use (trained once and cached); 'smoke' is for tests.", **fv)
    return lambda: EvalOptions(
        num_importance_samples=k.value, samples_per_chunk=chunk.value, batch_size=batch.value,
        active_unit_threshold=threshold.value, clustering=clustering_flag.value, n2d=n2d.value,
        baselines=baselines.value, probe=probe.value, max_examples=max_examples.value, seed=seed.value,
        num_quality_samples=quality.value, feature_classifier=classifier.value)


def options_from_args(args: list[str]) -> EvalOptions:
    """EvalOptions from `python -m aejax.evaluate` flags (e.g. a sweep's `-- --num_importance_samples=100`)."""
    flag_values = flags.FlagValues()
    read = define_option_flags(flag_values)
    try:
        flag_values(["evaluate", *args])
    except flags.Error as error:
        raise ConfigError(f"evaluation flags {' '.join(args)}: {error}") from None
    return read()


@dataclasses.dataclass(frozen=True)
class Precomputed:
    """Parts of a run's evaluation computed beforehand, for several runs at once (a population):
    the restored model, the per-example likelihood estimates, the disentanglement scores."""
    trained: Any = None
    likelihood: dict | None = None
    disentanglement: dict | None = None


def evaluate_run(workdir: str, step: int | None = None, options: EvalOptions = EvalOptions(),
                 shared: Precomputed = Precomputed()) -> dict[str, Any]:
    """The full report of the run in `workdir` at `step` (latest by default)."""
    seconds: dict[str, float] = {}
    stage = lambda name: _timed(seconds, name)  # noqa: E731
    trained = shared.trained if shared.trained is not None else load(workdir, step)
    config, variant = trained.config, trained.variant
    info = dataset_info(config.dataset)
    split = evaluation_split(config)
    needs_train = split != "train" and info.num_classes and options.clustering and \
        (options.probe or options.baselines)
    with stage("load data"):
        test = load_eval_data(config, split, options.max_examples)
        train = load_eval_data(config, "train") if needs_train else None
    with stage("encode"):
        encoded = encode_all(trained, test.x, options.batch_size, test.labels)
        codes = codes_of(trained, encoded)
    metrics, per_dim = {}, {}
    with stage("reconstruction"):
        metrics.update(reconstruction_metrics(trained, test, codes, options.batch_size))
    # The VAE family, and any variant with its own log-weights (gumbel_vae: categorical codes).
    if (variant.probabilistic_encoder or variant.importance_log_weights is not None) \
            and options.num_importance_samples > 0:
        with stage(f"likelihood (K={options.num_importance_samples})"):
            if shared.likelihood is None:
                shared = dataclasses.replace(shared, likelihood=likelihood_estimates(
                    trained, test.x, num_samples=options.num_importance_samples,
                    samples_per_chunk=options.samples_per_chunk, batch_size=options.batch_size, seed=options.seed,
                    labels=test.labels))
            likelihood, per_dim = likelihood_summary(shared.likelihood, encoded, test.x.shape[1:],
                                                     options.active_unit_threshold)
            metrics.update(likelihood)
    # Cov_x of the point code: for the VAE family the active-units statistic Cov_x(E_q[z_d|x]).
    if codes.ndim == 2:  # not for a grid of codes (VQ-VAE): it would be one number per grid entry
        per_dim["code_variance"] = np.var(codes.astype(np.float64), axis=0).tolist()
    codes = flat_codes(codes)  # clustering and probes read each code as one vector
    if options.clustering and info.num_classes:
        pca = None
        if options.baselines and train is not None:
            with stage("PCA of the pixels (fit on train)"):
                dim = min(codes.shape[1], test.grey[0].size)
                both = clustering.pca_codes(train.grey, np.concatenate([train.grey, test.grey]), dim)
                pca = (both[:len(train.grey)], both[len(train.grey):])
        metrics.update(clustering_metrics(codes, test, info.num_classes,
                                          None if pca is None else pca[1], options, stage))
        if options.probe and train is not None:
            with stage("linear probe"):
                metrics.update(probe_metrics(trained, train, test, codes, pca))
    about_samples = None
    if trained.can_sample and options.num_quality_samples > 0:  # a prior, or one fitted after training
        with stage(f"sample quality ({options.num_quality_samples} samples)"):
            scores, about_samples = sample_quality.score_run(
                trained, options.num_quality_samples, options.seed, options.feature_classifier,
                config.get("data_dir") or None)
            metrics.update(scores)
    if info.factor_sizes:  # ground-truth factors (dSprites): the disentanglement metrics
        with stage("disentanglement metrics"):
            metrics.update(shared.disentanglement if shared.disentanglement is not None else
                           factor_scores.disentanglement_metrics(trained, seed=int(config.seed)))
    return {
        "workdir": os.path.abspath(workdir), "step": trained.step, "model": config.model,
        "dataset": config.dataset, "split": split, "num_examples": len(test.x),
        "latent_dim": trained.latent_dim, "image_dims": int(np.prod(test.x.shape[1:])),
        "binarize": config.binarize, "data_convention": DATA_CONVENTIONS[config.binarize],
        "units": "nats per image (sum over pixels and latent dims, mean over test images)",
        "options": dataclasses.asdict(options),
        "metrics": {k: metrics[k] for k in [*METRICS, *sorted(set(metrics) - set(METRICS))]
                    if k in metrics},
        "per_dim": per_dim, "seconds": seconds,
        **({"sample_quality": about_samples} if about_samples is not None else {}),
        **({"conditional": CONDITIONAL_NOTE} if variant.conditional else {}),
    }


def check_can_write(workdir: str) -> None:
    """Before minutes of computing: one line (WorkdirError) if eval.json could not be written."""
    if os.path.isdir(workdir):  # a missing workdir is reported by `load`
        check_writable(workdir, create=False, room=OUTPUT_ROOM)


def write_report(workdir: str, report: dict) -> str:
    path = os.path.join(workdir, "eval.json")
    atomic_write(path, json.dumps(report, indent=2))  # never a half-written eval.json (a sweep treats it as 'finished')
    return path


def read_report(workdir: str) -> dict | None:
    path = os.path.join(workdir, "eval.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def format_value(value: Any) -> str:
    """Integers as they are; floats with 4 decimals below 10, else 2."""
    if isinstance(value, (int, np.integer)) or not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def table_rows(report: dict) -> list[tuple[str, str, str]]:
    """(metric, value, meaning) rows, in METRICS order."""
    return [(name, format_value(value), METRICS.get(name, ""))
            for name, value in report["metrics"].items()]


def format_table(report: dict) -> str:
    rows = table_rows(report)
    header = (f"{report['model']} on {report['dataset']} ({report['split']} split, "
              f"{report['num_examples']} images), step {report['step']}; K = "
              f"{report['options']['num_importance_samples']}; data: binarize={report['binarize']}")
    width = max(len(r[0]) for r in rows) if rows else 0
    value_width = max(len(r[1]) for r in rows) if rows else 0
    lines = [header, f"units: {report['units']}"]
    if "conditional" in report:
        lines.append(f"note: {report['conditional']}")
    lines += [f"  {name:<{width}}  {value:>{value_width}}  {meaning}" for name, value, meaning in rows]
    for name, values in report["per_dim"].items():
        lines.append(f"  per latent dim, {name}: " + " ".join(f"{v:.3g}" for v in values))
    about = report.get("sample_quality")
    if about is not None:
        lines.append(f"  {about['note']}" if "note" in about else
                     f"  sample quality: {about['num_samples']} samples vs {about['num_test_images']} test images; "
                     f"features: Fashion-MNIST classifier {about['classifier']['fingerprint']} (test accuracy "
                     f"{about['classifier']['test_accuracy']:.4f}), {about['classifier']['feature_dim']}-d "
                     "penultimate layer")
    return "\n".join(lines)
