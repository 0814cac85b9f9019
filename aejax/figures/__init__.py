"""Figures drawn from arrays and a trained model's calls: image grids (`grids`), the latent space
(`latents`), plots (`plots`) and the HTML page of a run (`page`). They import nothing of training or
evaluation; the drivers that gather what they draw live in `aejax.evaluation` and `aejax.training`."""
