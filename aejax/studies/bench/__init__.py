"""The speed bench: the trainer against PyTorch and against the machine's matmul throughput.

    python -m aejax.bench [--epochs=3] [--sections=vae,loop,torch,matmul,profile,models,batch,startup]
                          [--models=ae,contractive,adversarial] [--batch_sizes=32,...,1024]
                          [--dtype=float32|bf16]

Everything but startup and process runs in one process on the default JAX backend (the device is
printed), on Fashion-MNIST:

* vae: the canonical VAE (experiments/vae.py: 784-400-20 MLP, Bernoulli
  likelihood with dynamic binarisation, Adam 1e-3, batch 128) trained by the
  trainer's own compiled chunk (`aejax.training.chunks.make_train_chunk`,
  one epoch per call, its indices from `EpochOrders`): examples/s (median over the epochs after the first), seconds from
  the start to the first finished step (compile included), test −ELBO;
* loop: the same step jitted alone and called once per batch from Python
  with host-side batches (the per-step loop the scan replaces);
* torch: the same model the usual way in PyTorch (`torch_vae`;
  skipped with a note when torch is not installed);
* matmul: only the matmuls of one step (forward, and backward: weight
  gradients of every layer, input gradients of all but the data layer) at
  the model's shapes under XLA: the matmul-bound limit of the step, and the
  fraction of it that the trainer reaches;
* profile: the step with parts removed (binarisation noise, the gather,
  Adam → SGD) to show where the time above the matmuls goes, and the trainer's
  chunk as it was with each chunk drawing its epochs' permutations;
* models: the step of other registered variants (`--models`; a name may
  carry config overrides, `contractive:jacobian=jvp`); unregistered names
  are skipped with a note;
* batch: the VAE at several batch sizes, with the matmul bound of each;
* startup: whole processes, not this one: JAX's own start against a warm and
  a cold smoke run (`startup`; minima over `--repeats` alternating rounds);
* by name: conv (the conv VAE, beside its PyTorch mirror), dtype, population,
  likelihood, kernels (the trainer's step kernel by kernel, from a profiler
  trace: `kernels`), and process: the canonical VAE as a whole `python -m aejax.main`
  process against the PyTorch script as a whole process (`process`).

Timings on a shared machine are rough: the bench warms up, takes medians,
and prints its peak host memory (maxrss) at the end.

Modules: `harness` (options, a variant ready to step, timing, the matmul bound),
`sections` (one function per section), `startup` and `process` (whole processes), `conv`, `dtype`,
`population`, `likelihood` and `kernels` (the sections asked for by name), `report` (the printed table and
ratios), `torch_vae` (the PyTorch baselines, also runnable as a script).
"""
