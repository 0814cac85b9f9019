"""The VAE of vae.py with a KL warm-up (β from 0 to 1 over the first 5 epochs) and free bits (0.25 nats per dim)."""
from experiments import vae


def get_config(size=None):
    c = vae.get_config(size)
    c.kl_warmup_steps = 2340 if size != "smoke" else 10
    c.free_bits = 0.25
    return c
