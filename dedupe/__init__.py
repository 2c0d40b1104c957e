"""dedupe: deduplicating backups of LXD servers."""

__version__ = "0.1.0"
