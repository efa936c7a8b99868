"""Classical reconstructions."""
