"""Image enhancement: super-resolution (x2, x3, x4), denoising, JPEG-artifact removal and deblurring."""
