"""Model compression: knowledge distillation, pruning, quantization and their measurement."""
