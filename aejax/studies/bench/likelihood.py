"""The bench's `likelihood` section: importance-sampled log p(x) against the floor of its decoder matmuls.

Burda et al.'s protocol estimates log p(x) of every test image with K samples of
q(z | x): K decoder passes per image, so the decoder's matmuls (K·N rows through
every decoder layer) are the floor of its cost. The section times the evaluation's
own estimator (`aejax.evaluation.likelihood.likelihood_estimates`: the chunked
logsumexp over samples, its progress line, the host transfers) over the test split
at `--likelihood_samples` (K), and only those matmuls, at the estimator's own shapes
(`samples_per_chunk` × `batch_size` rows a call), and prints the ratio. The params
are the canonical VAE's initial ones: the cost does not depend on their values.
"""
from __future__ import annotations

import types

from aejax.studies.bench.harness import BenchOptions, base_config, block, flops, make_setup, matmul_bound_seconds

SAMPLES_PER_CHUNK, BATCH_SIZE = 100, 100  # aejax.evaluate's defaults


def decoder_matmuls(params, rows: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of the decoder's forward matmuls for `rows` codes (the Dense kernels under 'decoder')."""
    import jax
    return [(rows, *leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(params)
            if "decoder" in jax.tree_util.keystr(path) and jax.tree_util.keystr(path).endswith("['kernel']")
            and leaf.ndim == 2]


def section_likelihood(ctx, options: BenchOptions) -> dict:
    from aejax.evaluation.likelihood import likelihood_estimates
    setup = ctx.get("setup") or make_setup(base_config(options, "vae"), ctx["train"])
    params = setup.init().params
    images = ctx["test"].images
    num_samples = options.likelihood_samples
    chunk = min(SAMPLES_PER_CHUNK, num_samples)
    trained = types.SimpleNamespace(model=setup.model, variant=setup.variant, config=setup.config, params=params)

    def estimate(x):
        return likelihood_estimates(trained, x, num_samples=num_samples, samples_per_chunk=chunk,
                                    batch_size=BATCH_SIZE, seed=0)

    block(estimate(images[:BATCH_SIZE]))  # compile
    start = options.now()
    per_example = estimate(images)
    seconds = options.now() - start
    matmuls = decoder_matmuls(params, chunk * BATCH_SIZE)
    calls = -(-len(images) // BATCH_SIZE) * -(-num_samples // chunk)
    floor = matmul_bound_seconds(matmuls, options.matmul_dtype, options.repeats, options.now, iterations=10) * calls
    return {"num_images": len(images), "num_samples": num_samples, "seconds": seconds, "floor_seconds": floor,
            "flops": flops(matmuls) * calls, "log_px": float(per_example["log_px"].mean())}


def report_lines(result: dict, options: BenchOptions) -> list[str]:
    del options
    r = result
    return [f"Importance-sampled log p(x): K = {r['num_samples']:,} over {r['num_images']:,} test images "
            f"(untrained canonical VAE; the cost does not depend on the params)",
            f"  the evaluation's estimator                   {r['seconds']:8.1f}s",
            f"  its decoder matmuls alone ({r['flops'] / 1e12:.1f} TFLOP)        {r['floor_seconds']:8.1f}s",
            f"  estimator / matmul floor                     {r['seconds'] / r['floor_seconds']:8.2f}×",
            ""]
