"""The name of the data-parallel mesh axis.

Models (BatchNorm's ``axis_name``), losses and steps reduce over it; it lives
below them all so that a loss registry needs no training loop.
"""

AXIS = "batch"
