"""Making a backup: ``session`` (one backup in progress: its transaction, item stream
and commit), ``chunking`` (cut, hash and compress on worker threads), ``writer`` (packs,
index segments and the manifest, in commit order), ``files_cache`` (unchanged files are
not read again), and the kinds of input: ``stream``, ``tar`` (file-aligned) and ``tree``
(a directory). Nothing is imported here, so a command loads only what it runs."""
