"""Forward models: MRI, denoising."""
