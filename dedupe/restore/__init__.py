"""Getting backups back out: ``tree`` rebuilds tar files and directories from a tar or
directory backup's entries, ``browse`` lists and compares them (``ls``, ``diff``). Streams
come back through the shared read path, ``dedupe.read``."""
