"""Safe image decoding, data-set readers, transforms, built-in data sets and data checks."""
