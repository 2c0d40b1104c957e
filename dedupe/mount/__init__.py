"""``dedupe mount``: the repository as a read-only FUSE file system (fs), its backups
(catalog), each backup as a tree (backup_tree) and random reads of file content
(content)."""
