"""Training: the driver-side launcher and the executor-side per-rank loop."""
