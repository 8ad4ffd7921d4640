"""Image classification: labels and calibrated probabilities from CNNs and Vision Transformers."""
