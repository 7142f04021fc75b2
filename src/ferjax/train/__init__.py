"""Training: state, steps, parallelism, optimisation, checkpoints and the loop."""
