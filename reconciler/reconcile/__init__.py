"""reconciler.reconcile."""
