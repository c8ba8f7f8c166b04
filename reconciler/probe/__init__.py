"""reconciler.probe."""
