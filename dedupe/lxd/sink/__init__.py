"""LXD as a restore target: puts streams and records back into LXD.

- ``objects``: instances and custom volumes (a backup tarball streamed into LXD's
  import API) and images (re-imported with the same fingerprint, split images as
  metadata + rootfs again; then properties, public flag, profiles and aliases);
  something with that name is replaced only with ``force``, by a copy imported under a
  temporary name first (a failure leaves the original as it was); an image that is
  there is kept.
- ``rename``: under a new name or in another project, the names inside the tarball
  (``backup/index.yaml``, every ``backup.yaml``) are rewritten while streaming.
- ``records``: config records created from the record without its read-only fields
  (with ``force``, updated in place; a storage pool is never changed), and the server
  config (the keys the backup has are set; others are left).
- ``pool``: a container's files laid out in its ``dir`` pool, then LXD's recovery
  (directories it replaces are set aside until it succeeds).

What a restore into LXD refuses is in ``dedupe.lxd.errors``.

Reading the backups from the repository (verified) is the application layer's part:
``dedupe.lxd``.
"""
