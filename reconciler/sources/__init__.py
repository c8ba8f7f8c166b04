"""reconciler.sources."""
