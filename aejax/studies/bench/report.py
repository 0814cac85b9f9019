"""The bench's printed report: figures side by side, and the ratios the targets are stated in."""
from __future__ import annotations

import resource

from aejax.studies.bench import conv, dtype, kernels, likelihood, population, process, startup
from aejax.studies.bench.harness import BenchOptions, median_rate


def _fmt(value, spec=",.0f") -> str:
    return "—" if value is None else format(value, spec)


def report(results: dict, header: str, options: BenchOptions) -> str:
    lines = [header, ""]
    vae, loop, torch_, matmul = (results.get(k) for k in ("vae", "loop", "torch", "matmul"))
    if vae or loop or torch_ or matmul:
        epochs = options.epochs
        lines += [f"Canonical VAE (experiments/vae.py: MLP 400-20, Bernoulli, dynamic binarisation, Adam 1e-3, "
                  f"batch 128) on {options.dataset}, {epochs} epochs; examples/s = median over epochs 2..{epochs}",
                  f"  {'':34s}{'aejax scan':>14s}{'aejax loop':>14s}{'torch':>14s}"]
        torch_ok = torch_ and "skipped" not in torch_
        row = lambda name, a, b, c, spec=",.0f": lines.append(  # noqa: E731
            f"  {name:34s}{_fmt(a, spec):>14s}{_fmt(b, spec):>14s}{_fmt(c, spec):>14s}")
        row("examples/s", median_rate(vae), median_rate(loop), median_rate(torch_) if torch_ok else None)
        row("start → first step (s)", (vae or {}).get("first_step_seconds"), None,
            torch_.get("first_step_seconds") if torch_ok else None, ".1f")
        row("test −ELBO (nats)", (vae or {}).get("test_negative_elbo"), None,
            torch_.get("test_negative_elbo") if torch_ok else None, ".2f")
        if torch_ and not torch_ok:
            lines.append(f"  torch: skipped: {torch_['skipped']}")
        elif torch_:
            lines.append(f"  torch {torch_['version']} on the CPU, {torch_['threads']} threads, eager, tensor "
                         "batching (randperm slices of one float tensor; no DataLoader)")
        if matmul:
            lines.append(f"  matmul-bound limit: {matmul['num_matmuls']} matmuls, "
                         f"{matmul['flops_per_step'] / 1e6:.0f} MFLOP/step, "
                         f"{matmul['seconds_per_step'] * 1e3:.2f} ms/step = "
                         f"{matmul['flops_per_step'] / matmul['seconds_per_step'] / 1e9:.1f} GFLOP/s → "
                         f"{matmul['examples_per_sec']:,.0f} examples/s")
            if matmul.get("frameworks"):
                lines.append("  the same matmuls through each framework's kernels (GFLOP/s): " + ", ".join(
                    f"{name} {matmul['flops_per_step'] / seconds / 1e9:,.0f}"
                    for name, seconds in matmul["frameworks"].items()))
        lines.append("  ratios:")
        if median_rate(vae) and torch_ok:
            lines.append(f"    aejax / torch examples/s     {median_rate(vae) / median_rate(torch_):6.2f}×   (target ≥ 1.5×)")
        if matmul and matmul.get("trainer_fraction_of_bound"):
            lines.append(f"    fraction of matmul bound     {matmul['trainer_fraction_of_bound']:6.1%}   (target ≥ 80%; "
                         f"the trainer's {options.steps}-step chunks and the matmuls timed in turn: "
                         f"{matmul['trainer_seconds_per_step'] * 1e3:.2f} against "
                         f"{matmul['seconds_per_step'] * 1e3:.2f} ms/step)")
        if median_rate(vae) and matmul:
            lines.append(f"    examples/s above ÷ the bound {median_rate(vae) / matmul['examples_per_sec']:6.1%}   "
                         "(the vae section's epochs, timed apart from the matmuls)")
        if median_rate(vae) and median_rate(loop):
            lines.append(f"    scan / per-step loop         {median_rate(vae) / median_rate(loop):6.2f}×")
        if vae and torch_ok:
            lines.append(f"    test −ELBO aejax − torch     {vae['test_negative_elbo'] - torch_['test_negative_elbo']:+6.2f} "
                         "nats   (same within noise: a few nats after a few epochs)")
        lines.append("")
    if results.get("profile"):
        profile = results["profile"]
        full = profile["full trainer step"]
        lines.append(f"Where the step's time goes (VAE, batch 128, {options.steps}-step chunks): "
                     "examples/s, ms/step, ms saved vs the full step")
        for name, rate in profile.items():
            ms = 128e3 / rate
            lines.append(f"  {name:56s}{rate:10,.0f}{ms:8.2f} ms{128e3 / full - ms:+8.2f} ms")
        if matmul:
            ms = matmul["seconds_per_step"] * 1e3
            lines.append(f"  {'matmuls only (the bound)':56s}{matmul['examples_per_sec']:10,.0f}{ms:8.2f} ms"
                         f"{128e3 / full - ms:+8.2f} ms")
        lines.append("")
    if results.get("models"):
        lines.append(f"Train step of each variant vs the plain 'ae' step on the same config "
                     f"({options.steps}-step chunks): examples/s")
        for name, row_ in results["models"].items():
            if "skipped" in row_:
                lines.append(f"  {name:42s}skipped: {row_['skipped']}")
            else:
                ratio = row_["examples_per_sec"] / row_["plain_ae_examples_per_sec"]
                lines.append(f"  {name:42s}{row_['examples_per_sec']:10,.0f}   plain ae "
                             f"{row_['plain_ae_examples_per_sec']:10,.0f}   {ratio:6.2f}× ae")
        lines.append("")
    if results.get("batch"):
        lines.append(f"VAE by batch size ({options.examples:,} examples per timed call)")
        for batch_size, row_ in results["batch"].items():
            lines.append(f"  batch {batch_size:<28d}{row_['examples_per_sec']:12,.0f} examples/s"
                         f"{row_['fraction_of_matmul_bound']:8.1%} of matmul bound")
        lines.append("")
    if results.get("startup"):
        lines += startup.report(results["startup"])
    if results.get("process"):
        skipped = results["process"].get("skipped")
        lines += [f"Whole process against PyTorch: skipped: {skipped}", ""] if skipped else \
            process.report(results["process"], matmul)
    for name, module in (("conv", conv), ("dtype", dtype), ("population", population), ("likelihood", likelihood),
                         ("kernels", kernels)):
        if results.get(name):
            lines += module.report_lines(results[name], options)
    return "\n".join(lines)


def peak_host_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
