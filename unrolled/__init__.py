"""unrolled: iterative algorithms unrolled into trainable networks."""
