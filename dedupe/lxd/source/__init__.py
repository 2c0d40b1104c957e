"""What a backup run reads from LXD: ``plan`` decides which objects (and deletes the
stale export backups of earlier runs), ``objects`` opens each as a stream or a record."""
