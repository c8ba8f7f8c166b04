"""Install service: the one path through which models are installed, registered, deleted."""

from reconciler.install.service import ModelInstallService

__all__ = ["ModelInstallService"]
