"""Backing up an LXD server and restoring into one: the application layer that drives
the engine (backup sessions, verified reads, the repository lock) with the LXD source
(``dedupe.lxd.api``: reads objects as streams) and sink (``dedupe.lxd.sink``: puts
streams and records back into LXD).

``backup``: one run, one backup per object; ``stored``: LXD backups as the repository
holds them; ``restore``: one backup into LXD; ``restore_run``: a whole run;
``recover``: disaster recovery through LXD's own recovery; ``errors``: run-level errors.
"""
