"""ModelLoaderRegistry: which loader class loads which (base, type, format).

Loaders register with the seed's class decorator, stackable::

    @ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.CLIPVision, format=ModelFormat.Diffusers)
    @ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.T2IAdapter, format=ModelFormat.Diffusers)
    class GenericDiffusersLoader(ModelLoader): ...

Registering one (base, type, format) twice raises.  Lookup tries the model's exact base,
then ``any``; with neither, :class:`~reconciler.errors.NotImplementedException`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from reconciler.configs import ModelConfigBase
from reconciler.errors import NotImplementedException
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

L = TypeVar("L", bound=type)
Key = tuple[BaseModelType, ModelType, ModelFormat]


class ModelLoaderRegistry:
    """A class-level table of loader classes (the seed uses the class itself as the registry)."""

    _registry: dict[Key, type] = {}
    _lock = threading.Lock()

    @classmethod
    def register(cls, type: ModelType | str, format: ModelFormat | str,  # noqa: A002 - the seed's names
                 base: BaseModelType | str = BaseModelType.Any) -> Callable[[L], L]:
        """Class decorator: ``subclass`` loads models of this base, type and format."""
        key = (BaseModelType(base), ModelType(type), ModelFormat(format))

        def decorator(subclass: L) -> L:
            with cls._lock:
                existing = cls._registry.get(key)
                if existing is not None and existing is not subclass:
                    raise ValueError(
                        f"{subclass.__name__} is registered for base={key[0].value}, type={key[1].value}, "
                        f"format={key[2].value}, which {existing.__name__} already handles")
                cls._registry[key] = subclass
            return subclass

        return decorator

    @classmethod
    def unregister(cls, type: ModelType | str, format: ModelFormat | str,  # noqa: A002
                   base: BaseModelType | str = BaseModelType.Any) -> None:
        """Remove a registration (for tests and plugins that replace a loader)."""
        with cls._lock:
            cls._registry.pop((BaseModelType(base), ModelType(type), ModelFormat(format)), None)

    @classmethod
    def get_implementation(cls, config: ModelConfigBase, submodel_type: Optional[Any] = None) -> type:
        """The loader class for ``config``: its exact base first, then ``any``."""
        _ensure_builtin_loaders()
        for base in (config.base, BaseModelType.Any):
            found = cls._registry.get((base, config.type, config.format))
            if found is not None:
                return found
        raise NotImplementedException(
            f"no loader for {config.name!r}: base {config.base.value}, type {config.type.value}, "
            f"format {config.format.value}")

    @classmethod
    def registrations(cls) -> dict[Key, type]:
        """A copy of the table."""
        _ensure_builtin_loaders()
        with cls._lock:
            return dict(cls._registry)


def _ensure_builtin_loaders() -> None:
    """Import the shipped loaders once (they register themselves on import)."""
    import reconciler.load.model_loaders  # noqa: F401


__all__ = ["ModelLoaderRegistry"]
