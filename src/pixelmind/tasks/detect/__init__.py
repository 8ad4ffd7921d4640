"""Object detection: one-stage anchor-free CNN detectors (timm backbone, PAN neck, decoupled head)."""
