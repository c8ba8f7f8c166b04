"""reconciler.download."""
