"""Keeping a repository sound and small: ``check`` proves it whole (FORMAT.md section 13),
``gc`` frees what no backup references, ``prune`` applies retention rules (with
``series``, the groups and hosts a rule applies to, and ``forget``/``protect``), ``stats``
accounts for the space, and the ``repair`` commands mend damage: ``repair`` (the index,
from the packs' tables), ``repair_packs`` (salvage damaged packs), ``repair_backups``
(rewrite backups that lost chunks; ``repair_refs`` finds them). Nothing is imported here: each command loads what it runs."""
