"""reconciler.load."""
