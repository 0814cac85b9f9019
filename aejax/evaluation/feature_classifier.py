"""The Fashion-MNIST feature classifier of the sample-quality metrics: trained once, cached, reused.

`load_or_train(recipe)` returns the classifier of that recipe (`RECIPES`), training it
the first time (a progress line while it trains, then its test accuracy) and caching
its parameters next to the dataset's other derived data
(``<data cache>/aejax_fashion_mnist/<version>/feature_classifier/<fingerprint>/``,
`aejax.data.arrays.derived_dir`). The fingerprint hashes the recipe and
`TRAINING_VERSION`, so a changed recipe (or training code, when its version is bumped)
trains a new classifier beside the old one. The cache is written into a temporary
sibling and renamed, under a lock, so concurrent evaluations train once and readers
never see half of one; a damaged cache (parameters that no longer match their
recorded hash) is named in a warning and retrained. Same recipe, same parameters:
the data order and the initialisation come from `recipe.seed`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from aejax.core.batching import map_batches
from aejax.data.arrays import derived_dir, load_split
from aejax.data.catalog import dataset_info, exclusive
from aejax.models.classifier import FeatureClassifier
from aejax.training.progress import Progress

TRAINING_VERSION = 1  # bump when the training code changes what a recipe produces
FEATURE_LAYER = "ReLU activations of the dense layer before the softmax head (the penultimate layer)"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the classifier is trained; every field goes into the cache fingerprint."""
    dataset: str = "fashion_mnist"
    conv_channels: tuple[int, ...] = (32, 64)
    feature_dim: int = 128
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3
    num_train: int = 0  # 0 = the whole train split
    seed: int = 0

    def fingerprint(self) -> str:
        text = json.dumps({"training_version": TRAINING_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# `--feature_classifier` of `python -m aejax.evaluate`: "default" is the one the README's figures use;
# "smoke" trains in seconds, for tests (its figures are not comparable with the default's).
RECIPES = {
    "default": Recipe(),
    "smoke": Recipe(conv_channels=(8, 16), feature_dim=32, epochs=1, num_train=2000),
}


@dataclasses.dataclass(frozen=True)
class TrainedClassifier:
    """A trained classifier: `features(images)` in its feature layer, and what it scored."""
    recipe: Recipe
    params: dict
    test_accuracy: float
    train_seconds: float
    directory: str

    @property
    def fingerprint(self) -> str:
        return self.recipe.fingerprint()

    def features(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """images float [N, H, W, C] in [0, 1] (or uint8 0..255) -> float32 features [N, feature_dim]."""
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        fn = _features_fn(self.recipe)
        return map_batches(lambda batch, i: fn(self.params, jnp.asarray(batch, jnp.float32)), images,
                           min(batch_size, len(images)))

    def summary(self) -> dict:
        return {"recipe": dataclasses.asdict(self.recipe), "fingerprint": self.fingerprint,
                "test_accuracy": self.test_accuracy, "feature_layer": FEATURE_LAYER,
                "feature_dim": self.recipe.feature_dim, "directory": self.directory}


def _module(recipe: Recipe) -> FeatureClassifier:
    return FeatureClassifier(tuple(recipe.conv_channels), recipe.feature_dim, num_classes=10)


@functools.lru_cache(maxsize=4)
def _features_fn(recipe: Recipe):
    """The compiled feature map of a recipe's network, once per recipe (not once per call)."""
    module = _module(recipe)
    return jax.jit(lambda params, x: module.apply(params, x, method="features"))


def cache_directory(recipe: Recipe, cache_root: str | os.PathLike | None = None,
                    data_dir: str | None = None) -> Path:
    root = Path(cache_root) if cache_root else derived_dir(recipe.dataset, "feature_classifier", data_dir)
    return root / recipe.fingerprint()


def load_or_train(recipe: Recipe = RECIPES["default"], *, cache_root: str | os.PathLike | None = None,
                  data_dir: str | None = None) -> TrainedClassifier:
    """The cached classifier of `recipe`, trained (once, under a lock) if missing or damaged."""
    directory = cache_directory(recipe, cache_root, data_dir)
    cached = _read(directory, recipe)
    if cached is not None:
        return cached
    directory.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(directory.parent, f"feature_classifier-{recipe.fingerprint()}"):
        cached = _read(directory, recipe)  # another process may have trained it meanwhile
        if cached is not None:
            return cached
        shutil.rmtree(directory, ignore_errors=True)
        trained = train(recipe, data_dir)
        _write(directory, trained)
        return dataclasses.replace(trained, directory=str(directory))


def train(recipe: Recipe, data_dir: str | None = None) -> TrainedClassifier:
    """Adam on softmax cross-entropy, `recipe.epochs` passes in an order drawn from `recipe.seed`."""
    start = time.perf_counter()
    data = load_split(recipe.dataset, "train", data_dir=data_dir)
    images, labels = data["image"], data["label"]
    if recipe.num_train:
        images, labels = images[:recipe.num_train], labels[:recipe.num_train]
    module = _module(recipe)
    key = jax.random.PRNGKey(recipe.seed)
    params = module.init(jax.random.fold_in(key, 0), jnp.zeros((1, *images.shape[1:])))
    optimizer = optax.adam(recipe.learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = module.apply(p, x.astype(jnp.float32) / 255.0)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    steps_per_epoch = len(images) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    progress = Progress(total, 0, recipe.batch_size, description="training the feature classifier (once)")
    done = 0
    for epoch in range(recipe.epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 1 + epoch), len(images)))
        for i in range(steps_per_epoch):
            rows = np.sort(order[i * recipe.batch_size:(i + 1) * recipe.batch_size])
            params, opt_state, loss = step(params, opt_state, images[rows], labels[rows])
            done += 1
            if done == 1:
                progress.start(done)
            progress.update(done, f"loss {float(loss):.4f}")
    accuracy = test_accuracy(module, params, recipe, data_dir)
    seconds = time.perf_counter() - start
    logging.info("feature classifier %s: test accuracy %.4f, trained in %.1fs", recipe.fingerprint(), accuracy,
                 seconds)
    return TrainedClassifier(recipe, params, accuracy, seconds, "")


def test_accuracy(module: FeatureClassifier, params, recipe: Recipe, data_dir: str | None = None) -> float:
    test = load_split(recipe.dataset, "test", data_dir=data_dir)
    apply = jax.jit(lambda p, x: jnp.argmax(module.apply(p, x.astype(jnp.float32) / 255.0), axis=-1))
    predicted = map_batches(lambda batch, i: apply(params, batch), test["image"], 500)
    return float(np.mean(predicted == test["label"]))


# ------------------------------------------------------------------ cache ----

def _write(directory: Path, trained: TrainedClassifier) -> None:
    """Into a temporary sibling, then renamed: readers never see half a cache."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    tmp.chmod(0o755)
    try:
        blob = flax.serialization.to_bytes(trained.params)
        (tmp / "params.msgpack").write_bytes(blob)
        meta = {"recipe": dataclasses.asdict(trained.recipe), "training_version": TRAINING_VERSION,
                "test_accuracy": trained.test_accuracy, "train_seconds": round(trained.train_seconds, 1),
                "feature_layer": FEATURE_LAYER, "params_sha256": hashlib.sha256(blob).hexdigest()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks the cache complete
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(directory: Path, recipe: Recipe) -> TrainedClassifier | None:
    """The cached classifier, or None if there is none (or it is damaged: then a warning says so)."""
    if not (directory / "meta.json").is_file():
        return None
    try:
        meta = json.loads((directory / "meta.json").read_text())
        blob = (directory / "params.msgpack").read_bytes()
        if hashlib.sha256(blob).hexdigest() != meta["params_sha256"]:
            raise ValueError("params.msgpack does not match the hash recorded in meta.json")
        module = _module(recipe)
        shape = dataset_info(recipe.dataset).image_shape
        target = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape))))
        params = flax.serialization.from_bytes(jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), target),
                                               blob)
        return TrainedClassifier(recipe, params, float(meta["test_accuracy"]), float(meta["train_seconds"]),
                                  str(directory))
    except (OSError, ValueError, KeyError, TypeError) as error:
        logging.warning("the feature classifier cache %s is damaged (%s); training it again", directory, error)
        return None
