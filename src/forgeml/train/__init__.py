"""Training: the loop, optimizers and schedules, precision and devices, checkpoints."""
