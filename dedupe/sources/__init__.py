"""Adapters in: what a backup reads, below the engine (they import no repository). ``directory``
walks a tree (``excludes`` leaves paths out), ``tarstream`` reads a tar stream byte-faithfully."""
