"""Objectives: one module per family, each a pure loss_fn -> (loss, metrics), collected by name.

Each family module exports `VARIANTS` (the `aejax.core.variant.Variant`s it
makes, each with the config keys only it reads) next to its losses. This
package is the registry: `get(config.model)`, `names()`. A new family is one
file plus one entry in `FAMILIES`.
"""
from __future__ import annotations

from types import MappingProxyType

from aejax.core.options import Option, one_of
from aejax.core.variant import Variant
from aejax.objectives import (aae, ae, capacity, contractive, cvae, denoising, dip_vae, factor_vae, gumbel_vae,
                              hvae, iaf_vae, likelihoods, mmd, rae, sparse, tcvae, vae, vamp_prior, vq_vae)

FAMILIES = (ae, vae, sparse, denoising, contractive, aae, tcvae, factor_vae, vq_vae, mmd, dip_vae, capacity,
            vamp_prior, iaf_vae, hvae, rae, cvae, gumbel_vae)


def _collect() -> MappingProxyType:
    variants: dict[str, Variant] = {}
    for family in FAMILIES:
        for variant in family.VARIANTS:
            if variant.name in variants:
                raise ValueError(f"variant {variant.name!r} is registered twice")
            variants[variant.name] = variant
    return MappingProxyType(variants)


VARIANTS = _collect()


def names() -> tuple[str, ...]:
    """Every registered `config.model` value."""
    return tuple(sorted(VARIANTS))


def get(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(names())}")
    return VARIANTS[name]


# Keys every variant reads; each variant's own keys are in `Variant.options`.
OPTIONS = {
    "model": Option("vae", one_of(names), "registry name (aejax.objectives.names())"),
    **likelihoods.OPTIONS,
}
