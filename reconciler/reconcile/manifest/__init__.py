"""Manifests: read ModelSet documents (apiVersion ``reconciler/v1``) with their positions.

A manifest file holds one or more YAML documents, each a ``ModelSet``::

    apiVersion: reconciler/v1
    kind: ModelSet
    metadata: {name: studio, labels: {team: art}}
    spec:
      prune: true
      defaults: {variant: fp16}
      models:
        - name: sdxl-vae
          source: stabilityai/sdxl-vae:fp16:vae

:func:`load_manifests` reads files and folders into a :class:`Manifest`.  Every problem is a
:class:`~reconciler.errors.ManifestError` on one line, ``file:line:col: message`` (1-based).
A manifest is untrusted input: a file over 8 MiB, nesting deeper than 64 levels or more than
1,000,000 nodes once aliases are expanded is refused before it is built (see ``yamlnodes``).

The package, one module per job (each imports only those above it):

- ``yamlnodes``: YAML to data that remembers positions (libyaml when present, else ruamel.yaml;
  why, in its docstring), within the limits on size, nesting and alias expansion;
- ``fields``: the fields an entry and ``spec.defaults`` share, and the ``config:`` overrides;
- ``sources``: an entry's source string with its keys and the defaults laid over it;
- ``models``: ModelEntry, ModelSet, Manifest, and where each entry and set was declared;
- ``messages``: a pydantic ValidationError as one ``file:line:col: message``;
- ``loader``: finding manifest files, and :func:`load_manifests`.

Merging ``defaults``
--------------------
Each entry field absent from the entry is taken from ``spec.defaults``; ``tags`` from the entry
replace the defaults' (no union); ``config`` merges key by key (the entry's keys win).
``variant``, ``subfolder`` and ``revision`` defaults apply to Hugging Face sources only, and only
when neither the entry's key nor its source string sets them; an ``inplace`` default applies to
local sources only.  On an entry itself these keys are errors for sources they do not fit.
"""

from __future__ import annotations

from reconciler.reconcile.manifest.fields import ConfigOverrides, EntryDefaults
from reconciler.reconcile.manifest.loader import MANIFEST_SUFFIXES as MANIFEST_SUFFIXES
from reconciler.reconcile.manifest.loader import iter_entries, load_manifests
from reconciler.reconcile.manifest.models import (
    API_VERSION,
    KIND,
    EntryOrigin,
    Manifest,
    ModelEntry,
    ModelSet,
    ModelSetMetadata,
    ModelSetSpec,
    SetOrigin,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "ConfigOverrides",
    "EntryDefaults",
    "EntryOrigin",
    "Manifest",
    "ModelEntry",
    "ModelSet",
    "ModelSetMetadata",
    "ModelSetSpec",
    "SetOrigin",
    "iter_entries",
    "load_manifests",
]
