"""Keeping a repository sound and small: ``check`` proves it whole (FORMAT.md section 13),
``gc`` frees what no backup references, ``prune`` applies retention rules (with
``series``, the groups and hosts a rule applies to, and ``forget``/``protect``), ``stats``
accounts for the space. Nothing is imported here: each command loads what it runs."""
