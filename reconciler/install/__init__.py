"""reconciler.install."""
