"""Data parallelism over every device of every process: one mesh, one `data` axis.

The train state is replicated; each global batch is split along its batch
axis across the devices of the mesh (and so across processes). The train step
itself is unchanged: the shardings on the jitted chunk and a constraint on
the gathered batch are all XLA needs to partition it and to all-reduce the
gradients (the batch mean in the loss becomes a cross-device sum).

Several hosts (or several processes on one host) join through
`jax.distributed.initialize`, before any other JAX call: asked for with
`--multihost`, or detected from the environment (`JAX_COORDINATOR_ADDRESS`
with `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`, or a multi-task SLURM step).
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from aejax.core.errors import ConfigError
from aejax.core.options import Option, count

DATA_AXIS = "data"

OPTIONS = {
    "num_devices": Option(0, count, "devices the batch is split over; 0 = all, of every process", resumable=True),
}


def multihost_requested(flag: bool | None = None) -> bool:
    """`flag` if given, else whether the environment describes a multi-process job."""
    if flag is not None:
        return flag
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    return "SLURM_STEP_NODELIST" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1


def initialize(flag: bool | None = None) -> None:
    """`jax.distributed.initialize` when a multi-process run is asked for; else nothing.

    The coordinator, process count and id come from `JAX_COORDINATOR_ADDRESS`,
    `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` when set, else from SLURM (jax's
    own cluster detection).
    """
    if not multihost_requested(flag):
        return
    count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
    jax.distributed.initialize(
        coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
        num_processes=int(count) if count else None,
        process_id=int(index) if index else None)


def is_main_process() -> bool:
    """Only process 0 writes metrics, figures and config files."""
    return jax.process_index() == 0


def max_over_processes(value: int) -> int:
    """The largest of every process's `value` (one small collective); `value` itself with one process.

    What lets a multi-process job agree: whether any process failed a check, or
    the signal any process received (so all stop at the same step).
    """
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils
    return int(np.max(multihost_utils.process_allgather(np.asarray(value, np.int32))))


def sync_processes(name: str) -> None:
    """Wait until every process reaches this point (a barrier); nothing with one process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D `data` mesh over the first `num_devices` devices (0 = all, of every process)."""
    devices = jax.devices()
    if num_devices:
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ConfigError(f"config.num_devices={num_devices}: a multi-process run uses all "
                             f"{len(devices)} devices (set num_devices=0)")
        if num_devices > len(devices):
            raise ConfigError(f"config.num_devices={num_devices} but only {len(devices)} devices exist")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Split along `batch_axis` (e.g. 1 for [steps, batch, ...] chunks) over the data axis."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def constrain_batch(tree, mesh: Mesh, batch_axis: int = 0):
    """Ask XLA to lay out every leaf of `tree` split along its batch axis."""
    sharding = batch_sharding(mesh, batch_axis)
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def process_batch_slice(mesh: Mesh, batch_size: int) -> slice:
    """The contiguous part of a global batch that this process's devices hold."""
    indices = batch_sharding(mesh).addressable_devices_indices_map((batch_size,)).values()
    starts = [index[0].start or 0 for index in indices]
    stops = [batch_size if index[0].stop is None else index[0].stop for index in indices]
    return slice(min(starts), max(stops))


def global_batches(mesh: Mesh, local: dict[str, np.ndarray], batch_size: int) -> dict[str, jax.Array]:
    """[steps, local batch, ...] host arrays of every process → global [steps, batch, ...] arrays."""
    sharding = batch_sharding(mesh, batch_axis=1)
    return {k: jax.make_array_from_process_local_data(
        sharding, v, (v.shape[0], batch_size, *v.shape[2:])) for k, v in local.items()}


def local_copy(tree, device=None):
    """A replicated (global) pytree as arrays on one device of this process.

    Evaluation and figures then run per process without collectives (every
    process holds the whole state). `device` defaults to the first shard's.
    """
    def local(x):
        if not isinstance(x, jax.Array):
            return x
        shard = x.addressable_data(0)
        return shard if device is None else jax.device_put(shard, device)
    return jax.tree_util.tree_map(local, tree)
