"""The generation task: GANs and diffusion models (see task.py)."""
