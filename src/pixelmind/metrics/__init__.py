"""Task metrics: thin wrappers over torchmetrics plus what it lacks."""
