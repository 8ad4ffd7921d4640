"""The generic training loop (Accelerate), checkpoints, run directories and reports."""
