"""model-reconciler: manage Stable Diffusion / transformer model files the GitOps way.

The package root re-exports the public names of every service, lazily (PEP 562), so
``import reconciler`` and the CLI start fast and never import torch:

    from reconciler import ModelRecordServiceSQL, ModelInstallService, plan, apply
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # taxonomy
    **{name: "reconciler.taxonomy" for name in (
        "BaseModelType", "ModelType", "ModelFormat", "ModelVariantType", "SubModelType",
        "ModelRepoVariant", "SchedulerPredictionType",
    )},
    # configs
    **{name: "reconciler.configs" for name in (
        "ModelConfigBase", "AnyModelConfig", "FileState", "CheckpointConfigBase", "DiffusersConfigBase",
        "MainConfigBase", "MainCheckpointConfig", "MainDiffusersConfig", "ONNXSD2Config", "ONNXOliveConfig",
        "VAECheckpointConfig", "VAEDiffusersConfig", "LoRALyCORISConfig", "LoRADiffusersConfig",
        "TextualInversionFileConfig", "TextualInversionFolderConfig", "ControlNetCheckpointConfig",
        "ControlNetDiffusersConfig", "IPAdapterInvokeAIConfig", "IPAdapterCheckpointConfig",
        "CLIPVisionDiffusersConfig", "T2IAdapterDiffusersConfig", "IPAdapterConfig", "LoRAConfig",
        "CheckpointConfig", "MainConfig",
    )},
    # errors
    **{name: "reconciler.errors" for name in (
        "ReconcilerError", "UnknownModelException", "DuplicateModelException", "InvalidModelConfigException",
        "ManifestError", "UnknownJobIDException", "ModelNotFoundException", "NotImplementedException",
        "LoadError",
    )},
    # services
    "ModelRecordServiceBase": "reconciler.store.base",
    "ModelRecordServiceSQL": "reconciler.store.sql",
    "ModelRecordServiceFile": "reconciler.store.yamlfile",
    "ModelInstallService": "reconciler.install.service",
    "ModelInstallJob": "reconciler.install.jobs",
    "InstallStatus": "reconciler.install.jobs",
    "ModelManagerService": "reconciler.install.manager",
    "ModelLoadService": "reconciler.load.service",
    "ModelCache": "reconciler.load.cache",
    "ModelConvertCache": "reconciler.load.convert_cache",
    "ModelLoaderRegistry": "reconciler.load.registry",
    "ModelLoader": "reconciler.load.loader",
    "LoadedModel": "reconciler.load.loaded",
    "DownloadQueueService": "reconciler.download.queue",
    "DownloadJobBase": "reconciler.download.jobs",
    "DownloadJobStatus": "reconciler.download.jobs",
    "MultiFileDownloadJob": "reconciler.download.jobs",
    "DownloadPart": "reconciler.download.jobs",
    "LocalModelSource": "reconciler.sources.base",
    "URLModelSource": "reconciler.sources.base",
    "HFModelSource": "reconciler.sources.base",
    "CivitaiModelSource": "reconciler.sources.base",
    "parse_source": "reconciler.sources.parse",
    "probe_model": "reconciler.probe.probe",
    "HuggingFaceMetadataFetch": "reconciler.sources.huggingface",
    "CivitaiMetadataFetch": "reconciler.sources.civitai",
    "ModelMetadataStore": "reconciler.store.metadata",
    "ModelMetadataFetchBase": "reconciler.sources.metadata_fetch",
    **{name: "reconciler.metadata" for name in (
        "AnyModelRepoMetadata", "CivitaiMetadata", "HuggingFaceMetadata", "ModelMetadataBase", "RemoteModelFile",
    )},
    "ResolvedSource": "reconciler.sources.resolved",
    "resolve_source": "reconciler.sources.resolve",
    "ProbeResult": "reconciler.probe.probe",
    "AppSettings": "reconciler.settings",
    "load_settings": "reconciler.settings",
    "EventBus": "reconciler.events",
    # reconciler
    "Manifest": "reconciler.reconcile.manifest",
    "load_manifests": "reconciler.reconcile.manifest",
    "Plan": "reconciler.reconcile.plan",
    "ActionKind": "reconciler.reconcile.plan",
    "PlanOptions": "reconciler.reconcile.planner",
    "plan": "reconciler.reconcile.api",
    "apply": "reconciler.reconcile.api",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
