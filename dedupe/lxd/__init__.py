"""LXD: backing up an LXD server and restoring into one. Every LXD module lives here, in
layers (pyproject.toml's contracts keep them), top to bottom:

- ``cli``: the LXD commands (``backup lxd``, ``restore --to-lxd``);
- ``backup``: one backup run, one backup per object; ``restore_run``: a whole run back;
  ``recover``: disaster recovery through LXD's own recovery;
- ``restore``: one backup into LXD;
- ``stored``: LXD backups as the repository holds them (verified reads);
- ``source``: what a backup run reads (``plan``, ``objects``); ``sink``: what a restore
  writes (``objects``, ``records``, ``rename``, ``pool``);
- ``api``: the REST client, the only importer of pylxd and requests;
- ``kinds``: what a run can select; ``errors``: every LXD error, with its exit code.

docs/lxd.md holds the facts about LXD that this code relies on.
"""
