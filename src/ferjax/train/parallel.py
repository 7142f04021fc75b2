"""One device, many devices, one API: the step runs per device on axis 'batch'.

The default backend is ``jax.jit`` over ``jax.shard_map`` on a 1-D mesh of
every device of every process: its arrays are global, so Orbax and several
hosts need no conversion. The ``pmap`` backend runs the very same per-device
function through ``jax.pmap`` (state carries a leading device axis) and must
give the same numbers; it is single-process only.

Arguments are replicated (every device sees the whole array) unless a map
names them as sharded: then device ``i`` of the mesh sees rows
``[i * per_device, (i + 1) * per_device)`` of the global batch, and each
process only ever holds the rows of its own devices.
"""

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ferjax.axis import AXIS, BACKENDS

_DEVICE_FLAG = "--xla_force_host_platform_device_count"

log = logging.getLogger(__name__)


def configure_cpu_devices(count: int | None) -> int | None:
  """Splits the host CPU into ``count`` XLA devices; call before JAX starts.

  An explicit ``--xla_force_host_platform_device_count`` in XLA_FLAGS is the
  caller's own choice for this invocation and wins over the config. Returns
  the count in force, or None when XLA's default (one device) applies.
  """
  match = re.search(rf"{_DEVICE_FLAG}=(\d+)", os.environ.get("XLA_FLAGS", ""))
  if match:
    return int(match.group(1))
  if count is None:
    return None
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError as e:
    raise RuntimeError(
        f"config.parallel.cpu_devices={count} must be set before JAX "
        f"initialises its backends ({e})") from None
  return count


def cpu_devices_in_force(config: ml_collections.ConfigDict
                         ) -> ml_collections.ConfigDict:
  """``config`` with ``parallel.cpu_devices`` as the CPU devices JAX has.

  XLA_FLAGS (or a JAX started before the config could apply) may give
  another count than the config asks for; the run uses JAX's, so its config
  records that one, with a warning, and ``reproduce`` rebuilds the run the
  manifest describes rather than a different one.
  """
  wanted = config.parallel.cpu_devices
  if wanted is None or jax.default_backend() != "cpu":
    return config
  have = jax.local_device_count()
  if have == wanted:
    return config
  why = (f"XLA_FLAGS ({_DEVICE_FLAG}) sets {have}"
         if _DEVICE_FLAG in os.environ.get("XLA_FLAGS", "")
         else f"JAX was started with {have}")
  log.warning("%s CPU devices, overriding config.parallel.cpu_devices=%d: "
              "the run uses and records %d", why, wanted, have)
  resolved = ml_collections.ConfigDict(config.to_dict())
  resolved.parallel.cpu_devices = have
  return resolved


DETERMINISTIC_GPU_FLAG = "--xla_gpu_deterministic_ops=true"


def configure_gpu_determinism(deterministic: bool) -> None:
  """Asks XLA for deterministic GPU kernels; call before JAX starts.

  XLA reads its flags once, when the backend starts, so the flag goes into
  ``XLA_FLAGS`` (where the manifest records it). A flag already there is
  the caller's own choice and is kept either way.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if deterministic and "--xla_gpu_deterministic_ops" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_GPU_FLAG}".strip()


def _first_replica(x: Any) -> Any:
  """Device 0's copy of a pmapped array, without a multi-device program."""
  if not isinstance(x, jax.Array):
    return x[0]
  shard = x.addressable_shards[0].data
  return shard.reshape(x.shape[1:])


class Parallel:
  """Places state and data on the devices and maps per-device functions."""

  def __init__(self, backend: str, devices: Sequence[Any] | None = None):
    if backend not in BACKENDS:
      raise ValueError(f"unknown parallel backend {backend!r}")
    self.backend = backend
    self.devices = list(devices if devices is not None else jax.devices())
    if jax.process_count() > 1:
      if backend == "pmap":
        raise ValueError(
            "config.parallel.backend='pmap' runs in one process; with "
            f"{jax.process_count()} processes use 'shard_map'")
      if len(self.devices) != jax.device_count():
        raise ValueError(
            f"config.parallel.num_devices: with {jax.process_count()} "
            f"processes every one of the {jax.device_count()} devices takes "
            f"part, got {len(self.devices)}")
    self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
    here = jax.process_index()
    self._local = [(i, d) for i, d in enumerate(self.devices)
                   if d.process_index == here]

  @classmethod
  def from_config(cls, parallel: Any) -> "Parallel":
    """From ``config.parallel``: its backend on the first ``num_devices``."""
    devices = jax.devices()
    count = parallel.get("num_devices")
    if count is not None:
      if count > len(devices):
        raise ValueError(
            f"config.parallel.num_devices={count} but only {len(devices)} "
            "devices exist")
      devices = devices[:count]
    return cls(parallel.backend, devices)

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def replicate(self, tree: Any) -> Any:
    """A copy of ``tree`` on every device, in the layout the backend wants."""
    if self.backend == "shard_map":
      sharding = NamedSharding(self.mesh, P())
      if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
      # device_put would all-gather every array to check the processes agree;
      # they do by construction (same config, seed and data).
      return jax.tree.map(
          lambda x: jax.make_array_from_callback(
              np.shape(x), sharding, lambda index, x=np.asarray(x): x[index]),
          jax.device_get(tree))
    stacked = jax.tree.map(
        lambda x: np.broadcast_to(np.asarray(x), (self.num_devices,) +
                                  np.shape(x)), jax.device_get(tree))
    return jax.device_put(stacked, NamedSharding(self.mesh, P(AXIS)))

  def unreplicate(self, tree: Any) -> Any:
    """One logical copy of a replicated tree (global arrays for Orbax).

    Under pmap, device 0's buffer itself: indexing the stacked array would
    run a program on every device outside the step's one-in-flight guard,
    which XLA:CPU can abort under load (a missed rendezvous).
    """
    if self.backend == "shard_map":
      return tree
    return jax.tree.map(_first_replica, tree)

  def first_copy(self, tree: Any) -> Any:
    """This process's first device's copy of a replicated tree.

    What the host reads (metrics): a program on it runs on one device, so
    it needs no rendezvous of every device outside the step's guard.
    """
    if self.backend == "pmap":
      return jax.tree.map(_first_replica, tree)
    return jax.tree.map(lambda x: x.addressable_shards[0].data, tree)

  def local_positions(self, global_batch: int) -> np.ndarray:
    """Rows of a global batch that this process's devices hold, in order."""
    per = self._per_device(global_batch)
    return np.concatenate([np.arange(i * per, (i + 1) * per)
                           for i, _ in self._local])

  def shard(self, local: Any, global_batch: int, *,
            stacked: bool = False) -> Any:
    """Global arrays split over the devices, from this process's rows.

    ``local`` holds the rows ``local_positions(global_batch)``, in that
    order; pass the result as a sharded argument of a ``map``. ``stacked``:
    each array holds several such batches on a leading axis (a map built
    with ``stacked``), and every device gets its rows of each.
    """
    per = self._per_device(global_batch)
    lead = 1 if stacked else 0
    if self.backend == "pmap":
      # pmap splits the leading axis: (devices, [k,] per, ...).
      def split(x: np.ndarray) -> np.ndarray:
        x = np.reshape(x, x.shape[:lead] + (-1, per) + x.shape[lead + 1:])
        return np.moveaxis(x, lead, 0)

      return jax.device_put(jax.tree.map(split, local),
                            NamedSharding(self.mesh, P(AXIS)))
    sharding = NamedSharding(self.mesh, self._batch_spec(stacked))

    def place(x: np.ndarray) -> jax.Array:
      rows = (slice(None),) * lead
      shape = x.shape[:lead] + (global_batch,) + x.shape[lead + 1:]
      return jax.make_array_from_single_device_arrays(
          shape, sharding,
          [jax.device_put(x[rows + (slice(k * per, (k + 1) * per),)], d)
           for k, (_, d) in enumerate(self._local)])

    return jax.tree.map(place, local)

  @staticmethod
  def _batch_spec(stacked: bool) -> P:
    return P(None, AXIS) if stacked else P(AXIS)

  def _per_device(self, global_batch: int) -> int:
    if global_batch % self.num_devices:
      raise ValueError(f"a global batch of {global_batch} does not divide "
                       f"over {self.num_devices} devices")
    return global_batch // self.num_devices

  def map(self, fn: Callable[..., Any], *,
          donate_argnums: tuple[int, ...] = (),
          sharded_argnums: tuple[int, ...] = (),
          stacked: bool = False) -> Callable[..., Any]:
    """Compiles a per-device function of replicated and sharded arguments.

    ``fn`` sees the device's index through ``lax.axis_index(AXIS)``, its own
    rows of the arguments in ``sharded_argnums`` (placed by ``shard``, with
    the same ``stacked``), and must return values that are equal on every
    device (psum/pmean-reduced).
    """
    if self.backend == "pmap":
      mapped = jax.pmap(fn, axis_name=AXIS, devices=self.devices,
                        donate_argnums=donate_argnums)
    else:
      mapped = self._shard_mapped(fn, donate_argnums, sharded_argnums,
                                  stacked)
    if self.num_devices == 1 or self.devices[0].platform != "cpu":
      return mapped

    def one_in_flight(*args):
      # XLA:CPU runs each device's part of a program on one shared pool of
      # max(cores, devices) threads, and a part that reaches a collective
      # holds its thread until every device's part has arrived. When other
      # work queued meanwhile (the next program's parts, transfers) takes
      # the remaining threads, the last part never gets one and XLA aborts
      # the process after 40 s ("Termination timeout for all reduce ...
      # only 3 of them arrived"). It needs CPU load to show: unguarded, a
      # 4-device pmap quickstart aborted 2 runs of 2 at load average 23,
      # passed 3 of 3 with PJRT_NPROC=16 (a larger pool), and passes with
      # this guard (tests/integration/test_parallel_load.py); jit over shard_map needed
      # the guard first. Finishing each program before the next costs one
      # dispatch latency (~0.1 ms) per step.
      return jax.block_until_ready(mapped(*args))

    return one_in_flight

  def _shard_mapped(self, fn: Callable[..., Any],
                    donate_argnums: tuple[int, ...],
                    sharded_argnums: tuple[int, ...],
                    stacked: bool) -> Callable[..., Any]:
    by_arity: dict[int, Callable[..., Any]] = {}

    def mapped(*args):
      # shard_map wants one spec per positional argument.
      if len(args) not in by_arity:
        in_specs = tuple(self._batch_spec(stacked) if i in sharded_argnums
                         else P()
                         for i in range(len(args)))
        by_arity[len(args)] = jax.jit(
            jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs,
                          out_specs=P(), check_vma=False),
            donate_argnums=donate_argnums)
      return by_arity[len(args)](*args)

    return mapped
