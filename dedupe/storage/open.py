"""From a ``--repo`` value to a storage.

- a path: a local directory (FORMAT.md section 11.1);
- ``s3://BUCKET[/PREFIX]`` or ``s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]``: an S3
  bucket (section 11.2) behind a local cache of immutable objects
  (``dedupe.storage.cache``; ``DEDUPE_NO_CACHE=1`` turns it off).
"""

from __future__ import annotations

import os
from pathlib import Path

from dedupe.storage.base import Storage
from dedupe.storage.local import LocalStorage

NO_CACHE_ENV = "DEDUPE_NO_CACHE"


def is_remote(location: str) -> bool:
    if not location.startswith("s3:"):  # every S3 form does: a path needs no S3 module
        return False
    from dedupe.storage.s3 import is_s3
    return is_s3(location)


def open_storage(location: str, *, init: bool = False, s3_endpoint: str | None = None) -> Storage:
    """The storage behind a ``--repo`` value. With ``init``, get an S3 bucket ready for
    a new repository (created when missing; the prefix must be empty). ``s3_endpoint``
    (``--s3-endpoint``) comes before ``$DEDUPE_S3_ENDPOINT``; an endpoint inside the
    location comes first."""
    if not is_remote(location):
        return LocalStorage(Path(location))
    from dedupe.storage.cache import CachedStorage, cache_dir_for
    from dedupe.storage.s3 import S3Storage

    s3 = S3Storage.from_location(location, endpoint=s3_endpoint)
    if init:
        s3.prepare_init()
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return s3
    return CachedStorage(s3, cache_dir_for(s3.location, s3.endpoint))
