"""Linear autoencoder: one linear layer down to k codes, one back up (with a bias), squared error.

Its optimum spans the top-k principal subspace of the (centred) training data:
README "Linear AE vs PCA". Grey-level pixels (no binarisation), a unit-variance
Gaussian likelihood (loss = ½‖x − x̂‖² + const), Adam on a cosine schedule.
"""
from experiments import base


def get_config(size=None):
    c = base.get_config(size, model="linear_ae")
    c.hidden_dims = ()
    c.activation = "linear"
    c.latent_dim = 10 if size != "smoke" else c.latent_dim
    c.likelihood = "gaussian"
    c.binarize = "none"
    # Gradient descent reaches the principal subspace slowly (the data are not centred, and
    # the last directions have small eigenvalue gaps): many cheap steps, decayed to zero.
    c.batch_size = 256 if size != "smoke" else c.batch_size
    c.lr_schedule = "cosine"
    c.learning_rate = 3e-3
    c.num_epochs = 85
    return c
