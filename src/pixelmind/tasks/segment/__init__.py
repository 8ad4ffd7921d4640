"""Image segmentation: semantic masks (one class per pixel) and instance masks (one mask per object)."""
