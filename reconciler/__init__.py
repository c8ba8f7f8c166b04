"""model-reconciler."""
