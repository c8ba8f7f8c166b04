"""reconciler.probe: identify a model's type, format, base and variant from its files; hash them.

Public API::

    probe_model(path, overrides=None) -> ProbeResult
    fast_hash(path) -> str            # imohash of a file, or a digest over a folder's files
    sha256_file(path, chunk=...) -> str
    file_states(model_path) -> list[FileState]
    read_safetensors_header(path) -> SafetensorsHeader

Nothing here imports torch, diffusers or transformers at import time; torch is imported
only to read a pickled (.ckpt/.pt/.bin) checkpoint.
"""

from reconciler.probe.hashing import fast_hash, file_states, imohash_file, model_files, sha256_file
from reconciler.probe.pickle_scan import UnsafePickleError, read_pickle_checkpoint, scan_pickle
from reconciler.probe.probe import ProbeResult, probe_model, read_checkpoint
from reconciler.probe.rules import Detection, ModelNotRecognizedError, StateDictInfo
from reconciler.probe.safetensors_header import SafetensorsHeader, TensorInfo, read_safetensors_header

__all__ = [
    "probe_model",
    "ProbeResult",
    "ModelNotRecognizedError",
    "UnsafePickleError",
    "read_checkpoint",
    "read_safetensors_header",
    "read_pickle_checkpoint",
    "scan_pickle",
    "SafetensorsHeader",
    "TensorInfo",
    "StateDictInfo",
    "Detection",
    "fast_hash",
    "imohash_file",
    "sha256_file",
    "file_states",
    "model_files",
]
