"""Config keys declared where they are read, collected per model, defaulted and checked before anything runs."""
import logging
import os
import subprocess
import sys

import pytest

from aejax import objectives
from aejax.core.errors import ConfigError
from aejax.core.options import Option, check_value, merge, one_of, positive_integer
from aejax.training import config as run_config
from experiments import base, tcvae_dsprites, vae

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_key_is_declared_once_however_many_variants_read_it():
    tables = [run_config.shared_options()] + [objectives.get(name).options for name in objectives.names()]
    merged = merge(*tables)  # raises if one key had two different declarations
    assert merged["beta"] is objectives.get("vae").options["beta"] is objectives.get("tcvae").options["beta"]
    assert merged["discriminator_hidden_dims"] is objectives.get("aae").options["discriminator_hidden_dims"]
    with pytest.raises(ValueError, match="declared twice"):
        merge({"k": Option(1, positive_integer)}, {"k": Option(2, positive_integer)})


@pytest.mark.parametrize("model", objectives.names())
def test_every_default_passes_its_own_check(model):
    config = run_config.default_config(model)
    assert config.model == model
    assert set(config) == set(run_config.options_of(model))
    run_config.validate(config)


def test_a_config_holds_the_shared_keys_and_its_models_own():
    assert "mi_weight" not in vae.get_config() and "prior" not in vae.get_config()
    assert tcvae_dsprites.get_config().mi_weight == 1.0
    assert base.get_config("smoke", model="aae").discriminator_hidden_dims == (32, 32)


def test_a_model_switched_by_an_override_gets_its_keys_at_their_defaults():
    config = vae.get_config("smoke")
    config.model = "tcvae"
    completed = run_config.validate(config)
    assert completed.mi_weight == 1.0 and completed.tc_estimator == "mss" and "mi_weight" not in config
    config = run_config.validate(config)
    config.tc_estimator = "exact"
    with pytest.raises(ConfigError, match=r"config.tc_estimator='exact' is not allowed: use one of mss, mws"):
        run_config.validate(config)


def test_an_unknown_model_is_refused_before_its_keys_are_looked_up():
    config = vae.get_config("smoke")
    config.model = "nope"
    with pytest.raises(ConfigError, match="config.model='nope' is not allowed: use one of"):
        run_config.validate(config)


def test_a_key_no_module_reads_is_reported(caplog):
    config = vae.get_config("smoke")
    config.bata = 4.0
    with caplog.at_level(logging.WARNING):
        run_config.validate(config)
    assert "read by no part of aejax" in caplog.text and "bata" in caplog.text


def test_checks_name_the_key_the_value_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"^config.size=0 is not allowed: use a positive number$"):
        check_value("size", Option(1, positive_integer), 0)
    with pytest.raises(ConfigError, match=r"^config.size=1.5 must be an integer$"):
        check_value("size", Option(1, positive_integer), 1.5)
    check_value("kind", Option("a", one_of(lambda: ("a", "b"))), "b")
    config = vae.get_config("smoke")
    config.hidden_dims = (0,)
    with pytest.raises(ConfigError, match=r"hidden_dims=\(0,\) is not allowed: use a tuple of positive"):
        run_config.validate(config)


def test_loading_an_experiment_file_starts_no_jax_backend():
    """Config files load before `jax.distributed.initialize`, which must come before any backend starts."""
    script = ("import jax._src.xla_bridge as xb\n"
              "from experiments import beta_vae, factor_vae_dsprites, aae\n"
              "beta_vae.get_config(); factor_vae_dsprites.get_config(); aae.get_config()\n"
              "assert not xb._backends, 'a JAX backend started while loading configs'\n")
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True,
                   env=dict(os.environ, JAX_PLATFORMS="cpu"))
