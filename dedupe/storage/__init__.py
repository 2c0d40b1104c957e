"""Named immutable files: the storage protocol and its implementations."""

from dedupe.storage.base import Data, ObjectExists, ObjectNotFound, ObjectWriter, Storage, StorageError, joined

__all__ = ["Data", "ObjectExists", "ObjectNotFound", "ObjectWriter", "Storage", "StorageError", "joined"]
