"""The name of the data-parallel mesh axis, and the backends that map over it.

Models (BatchNorm's ``axis_name``), losses and steps reduce over it; it lives
below them all so that a loss registry needs no training loop. The backends'
names are checked in a config (``parallel.backend``) and implemented by
``train.parallel.Parallel``; both read them here.
"""

AXIS = "batch"
BACKENDS = ("shard_map", "pmap")
