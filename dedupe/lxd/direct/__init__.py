"""Direct reads of LXD storage pools (issue #14): an instance or custom volume backed up
by walking its directories in the pool, not through LXD's backups API.

A direct backup is a directory-tree backup (``manifest.KIND_DIR``, with the files
cache) whose entry paths are the member names of the export tarball LXD would write
(``backup/index.yaml``, ``backup/snapshots/<s>/...``, ``backup/container/...``; volumes:
``backup/volume-snapshots/<s>/``, ``backup/volume/``), so file contents chunk exactly as
in an export-based backup and a PAX tar of it is a tarball ``lxc import`` takes.

- ``pool``: where an object lives on which driver, and whether it can be read here;
- ``idmap``: undoing the uid/gid shift of an unprivileged container;
- ``index``: ``backup/index.yaml`` as LXD writes it, and the ``backup.yaml`` rewrite;
- ``btrfs``: temporary read-only snapshots, and the leftovers of killed runs;
- ``tree``: the walk that presents the export's layout;
- ``run``: one object backed up directly (the hook of ``dedupe.lxd.backup``);
- ``pieces``: a direct backup as tarball pieces for the restores into LXD.
"""
