"""The training state: everything a resumed run needs, as one pytree."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ferjax.train import optimizer


@flax.struct.dataclass
class TrainState:
  """Step counter, model variables, optimizer state and the run's PRNG key.

  ``rng`` is raw ``uint32[2]`` key data (not a typed key) so that Orbax can
  store it; per-step keys are folded from it and the step, which is what
  makes a resumed run draw the same random numbers as an uninterrupted one.
  ``ema`` is the exponential moving average of the model variables
  (``params`` and ``batch_stats``) with ``optimizer.ema_decay``, or ``{}``
  without one; checkpoints written before it existed restore it as ``{}``.
  """

  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jnp.ndarray
  plateau: optimizer.PlateauState
  ema: Any = flax.struct.field(default_factory=dict)


def create(*, model: flax.linen.Module, tx: optax.GradientTransformation,
           input_shape: tuple[int, int, int], seed: int,
           ema: bool = False) -> TrainState:
  """Initialises a state on the host for a model seeing ``input_shape`` images.

  The model is initialised in training mode so that training-only
  submodules (GoogLeNet's auxiliary heads) get parameters too. Initialisers
  are compiled without XLA's backend optimisations: they run once, and the
  default level spends tens of seconds compiling one kernel per parameter.
  With ``ema`` the moving average starts at the initial variables.
  """
  init_key, dropout_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
  init = jax.jit(lambda: model.init(
      {"params": init_key, "dropout": dropout_key},
      jnp.zeros((2, *input_shape), jnp.float32), train=True),
                 compiler_options={"xla_backend_optimization_level": 0})
  variables = init()
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return jax.device_get(TrainState(
      step=np.int32(0),
      params=params,
      batch_stats=batch_stats,
      opt_state=tx.init(params),
      rng=run_key,
      plateau=optimizer.plateau_init(),
      ema=({"params": params, "batch_stats": batch_stats} if ema else {})))
