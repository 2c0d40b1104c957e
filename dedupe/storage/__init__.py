"""Named immutable files: the storage protocol and its implementations."""

from dedupe.storage.base import ObjectExists, ObjectNotFound, Storage, StorageError

__all__ = ["ObjectExists", "ObjectNotFound", "Storage", "StorageError"]
