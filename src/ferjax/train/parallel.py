"""One device, many devices, one API: the step runs per device on axis 'batch'.

The default backend is ``jax.jit`` over ``jax.shard_map`` on a 1-D mesh: its
arrays are global, so Orbax and several hosts need no conversion. The
``pmap`` backend runs the very same per-device function through ``jax.pmap``
(state carries a leading device axis) and must give the same numbers.
"""

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


def configure_cpu_devices(count: int | None) -> int | None:
  """Splits the host CPU into ``count`` XLA devices; call before JAX starts.

  An explicit ``--xla_force_host_platform_device_count`` in XLA_FLAGS is the
  caller's own choice for this invocation and wins over the config. Returns
  the count in force, or None when XLA's default (one device) applies.
  """
  match = re.search(r"--xla_force_host_platform_device_count=(\d+)",
                    os.environ.get("XLA_FLAGS", ""))
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


class Parallel:
  """Places state and data on the devices and maps per-device functions."""

  def __init__(self, backend: str, devices: Sequence[Any] | None = None):
    if backend not in ("shard_map", "pmap"):
      raise ValueError(f"unknown parallel backend {backend!r}")
    self.backend = backend
    self.devices = list(devices if devices is not None else jax.devices())
    self.mesh = Mesh(np.asarray(self.devices), (AXIS,))

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
      return jax.device_put(tree, NamedSharding(self.mesh, P()))
    stacked = jax.tree.map(
        lambda x: np.broadcast_to(np.asarray(x), (self.num_devices,) +
                                  np.shape(x)), jax.device_get(tree))
    return jax.device_put(stacked, NamedSharding(self.mesh, P(AXIS)))

  def unreplicate(self, tree: Any) -> Any:
    """One logical copy of a replicated tree (global arrays for Orbax)."""
    if self.backend == "shard_map":
      return tree
    return jax.tree.map(lambda x: x[0], tree)

  def map(self, fn: Callable[..., Any], *,
          donate_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """Compiles a per-device function whose arguments are all replicated.

    ``fn`` sees the device's index through ``lax.axis_index(AXIS)`` and must
    return values that are equal on every device (psum/pmean-reduced).
    """
    if self.backend == "pmap":
      return jax.pmap(fn, axis_name=AXIS, devices=self.devices,
                      donate_argnums=donate_argnums)
    mapped = jax.jit(
        jax.shard_map(fn, mesh=self.mesh, in_specs=P(), out_specs=P(),
                      check_vma=False), donate_argnums=donate_argnums)
    if self.num_devices == 1 or self.devices[0].platform != "cpu":
      return mapped

    def one_in_flight(*args):
      # XLA:CPU (jaxlib 0.10) deadlocks in the collectives' rendezvous when a
      # second multi-device jit program is dispatched before the first one
      # finishes (the per-device executions of two programs wait on each
      # other in the shared thread pool). pmap is unaffected. Waiting for
      # completion costs one dispatch latency (~0.1 ms) per step here.
      return jax.block_until_ready(mapped(*args))

    return one_in_flight
