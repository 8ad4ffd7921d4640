"""Drawing (labels, boxes, masks, grids) and plots (curves, confusion, reliability)."""
