"""ModelMetadataFetchBase: what every repository's metadata fetcher offers (the seed's API).

A fetcher is built with an optional ``requests.Session`` (first, positional: the seed's
tests pass one to stay off the internet) and answers three questions:

* ``from_url(url)``: the metadata of a model URL a person pasted (a model page, a file URL);
* ``from_id(id)``: the metadata of a model by the repository's own id;
* ``from_json(json)`` (a class method): the metadata a ``model_dump_json()`` wrote, validated
  back into :data:`~reconciler.metadata.AnyModelRepoMetadata`.

Subclasses: :class:`~reconciler.sources.huggingface.HuggingFaceMetadataFetch` and
:class:`~reconciler.sources.civitai.CivitaiMetadataFetch`, whose ``from_json`` return their
own metadata class directly.  This lives in ``reconciler.sources`` rather than in
:mod:`reconciler.metadata` because the latter is a data-model module that must not depend on
networking.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from reconciler.metadata import AnyModelRepoMetadata, AnyModelRepoMetadataValidator


class ModelMetadataFetchBase(ABC):
    """Fetch a repository's model metadata; see the module docstring."""

    @abstractmethod
    def from_url(self, url: str) -> AnyModelRepoMetadata:
        """The metadata of the model a pasted URL names."""

    @abstractmethod
    def from_id(self, id: str) -> AnyModelRepoMetadata:
        """The metadata of the model with the repository's id ``id``."""

    @classmethod
    def from_json(cls, json: str) -> AnyModelRepoMetadata:
        """Validate the JSON of a metadata object (``model_dump_json()``) into its class."""
        return AnyModelRepoMetadataValidator.validate_json(json)


__all__ = ["ModelMetadataFetchBase"]
