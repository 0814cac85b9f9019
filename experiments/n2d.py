"""N2D on Fashion-MNIST as published (McConville et al. 2019, github.com/rymc/n2d, run.sh).

The autoencoder of the paper's released code: 784-500-500-2000-10, ReLU, a
linear code and a linear output, mean-squared error, Keras 2.2.4's Adam (lr 1e-3,
ε = 1e-7 added to √v before the bias correction: `keras_adam`), batch 256,
1,000 epochs, Keras's default initialisation, trained on all 70,000 images
(train + test: the deep-clustering protocol is unsupervised and scores every
image). Then `python -m aejax.n2d` clusters the codes of all 70,000 images:
UMAP to 10 dimensions (20 neighbours, min_dist 0, euclidean) and a
full-covariance Gaussian mixture of 10 components, and scores accuracy, NMI and
ARI against the labels. The squared error is a Gaussian likelihood with σ² = 1
(½‖x − x̂‖²: 392 times Keras's MSE, a mean over 784 pixels). Adam's step ignores
that factor except through ε, so ε is scaled by it: the same steps as Keras's.

    python -m aejax.main --config=experiments/n2d.py --workdir=runs/n2d
    python -m aejax.n2d --workdir=runs/n2d --seeds=0,1,2
"""
from experiments import base

EPOCHS = 1000
STEPS_PER_EPOCH = 70_000 // 256


def get_config(size=None):
    c = base.get_config(size, model="ae")
    c.hidden_dims = (500, 500, 2000)
    c.latent_dim = 10
    c.activation = "relu"
    c.likelihood = "gaussian"
    c.decoder_logvar = 0.0
    c.binarize = "none"
    c.param_init = "keras"
    c.learning_rate = 1e-3
    c.optimizer = "keras_adam"
    c.keras_adam_epsilon = 1e-7 * 784 / 2  # Keras's default ε, in the units of this loss's gradient
    c.train_split = "all"
    if size != "smoke":
        c.batch_size = 256
        c.num_epochs = EPOCHS
        c.checkpoint_every_steps = 10 * STEPS_PER_EPOCH  # every 10 epochs, all kept: accuracy against epochs
        c.keep_checkpoints = EPOCHS // 10
        c.eval_every_steps = 10 * STEPS_PER_EPOCH
        c.log_every_steps = STEPS_PER_EPOCH
    return c
