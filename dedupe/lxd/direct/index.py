"""``backup/index.yaml`` as LXD 5.0 writes it for an export, and the ``backup.yaml``
rewrite of an unshifted backup (pure).

An instance's index.yaml is a short header (name, backend, pool, the snapshots in the
tarball, optimized flags, type) followed by ``config:`` and the instance's
``backup.yaml`` indented by two spaces (byte for byte: lxd-facts.md 2.2). A custom
volume has no backup.yaml: its ``config:`` holds the volume record and its snapshots'
records, in the field order of LXD's structs. Values are written the way Go's yaml.v2
writes them: plain where that reads back as the same string, else double-quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

_PLAIN: Final = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./@+-]*$")
_TIMESTAMP: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_YAML_WORDS: Final = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"})
_LAST_STATE: Final = re.compile(rb"^( *)volatile\.last_state\.idmap: .*$", re.M)
_ZERO_TIME: Final = "0001-01-01T00:00:00Z"  # Go's zero time, as LXD 5.0 exports volumes (its API omits them)
_VOLUME_KEYS: Final = ("config", "description", "name", "type", "used_by", "location", "content_type", "project",
                       "created_at")
_VOLUME_SNAPSHOT_KEYS: Final = ("description", "expires_at", "name", "config", "content_type", "created_at")


def scalar(value: Any) -> str:
    """One YAML scalar as yaml.v2 writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = "" if value is None else str(value)
    if _TIMESTAMP.match(text):
        return text  # Go writes time.Time plain; LXD parses it back as a time
    if text and _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def header(name: str, backend: str, pool: str, snapshots: Sequence[str], kind: str) -> bytes:
    lines = [f"name: {scalar(name)}", f"backend: {backend}", f"pool: {scalar(pool)}"]
    if snapshots:  # ``omitempty``: no key at all without snapshots
        lines += ["snapshots:", *(f"- {scalar(s)}" for s in snapshots)]
    lines += ["optimized: false", "optimized_header: false", f"type: {kind}"]
    return ("\n".join(lines) + "\n").encode()


def instance_index(name: str, backend: str, pool: str, snapshots: Sequence[str], backup_yaml: bytes) -> bytes:
    """An instance's index.yaml: the header, then its backup.yaml under ``config:``."""
    body = b"".join(b"  " + line if line.strip() else line for line in backup_yaml.splitlines(keepends=True))
    return header(name, backend, pool, snapshots, "container") + b"config:\n" + body


def _mapping(record: Mapping[str, Any], keys: Iterable[str], indent: str, first: str = "") -> list[str]:
    """A record's fields in ``keys`` order (maps and lists of scalars nested), each line
    indented; ``first`` replaces the indent of the first line (a list item's ``- ``)."""
    out: list[str] = []
    for key in keys:
        value = record.get(key)
        lead = first if first and not out else indent
        if isinstance(value, Mapping):
            if not value:
                out.append(f"{lead}{key}: {{}}")
            else:
                out.append(f"{lead}{key}:")
                out += [f"{indent}  {k}: {scalar(v)}" for k, v in sorted(value.items())]
        elif isinstance(value, list):
            if not value:
                out.append(f"{lead}{key}: []")
            else:
                out.append(f"{lead}{key}:")
                out += [f"{indent}- {scalar(v)}" for v in value]
        else:
            out.append(f"{lead}{key}: {scalar(value)}")
    return out


def volume_index(record: Mapping[str, Any], snapshots: Sequence[Mapping[str, Any]], backend: str, pool: str) -> bytes:
    """A custom volume's index.yaml from its record and its snapshots' records (as the
    API gives them: ``used_by`` is kept empty, ``location`` ``none``, as LXD exports)."""
    volume = {**record, "used_by": [], "location": record.get("location") or "none",
              "created_at": record.get("created_at") or _ZERO_TIME}
    names = [str(s["name"]).rsplit("/", 1)[-1] for s in snapshots]
    lines = ["config:", "  volume:", *_mapping(volume, _VOLUME_KEYS, "    ")]
    if snapshots:
        lines.append("  volume_snapshots:")
        for snap, short in zip(snapshots, names):
            times = {k: snap.get(k) or _ZERO_TIME for k in ("expires_at", "created_at")}
            lines += _mapping({**snap, **times, "name": short}, _VOLUME_SNAPSHOT_KEYS, "    ", first="  - ")
    return header(str(record["name"]), backend, pool, names, "custom") + ("\n".join(lines) + "\n").encode()


def unshifted_backup_yaml(text: bytes) -> bytes:
    """``backup.yaml`` of files stored unshifted: every ``volatile.last_state.idmap``
    (the instance's, its expanded config's, each snapshot's) says ``'[]'``, so LXD
    shifts the restored files on the next start, by the idmap of the server it runs on."""
    return _LAST_STATE.sub(rb"\1volatile.last_state.idmap: '[]'", text)


def snapshot_names(backup_yaml: bytes) -> list[str]:
    """The snapshot names a ``backup.yaml`` lists (its top-level ``snapshots:``)."""
    names: list[str] = []
    inside = False
    for line in backup_yaml.decode("utf-8", "replace").splitlines():
        if not line.startswith((" ", "-")):
            inside = line.startswith("snapshots:")
            continue
        if line.startswith("- "):  # a list item's first field
            line = "  " + line[2:]
        if inside and line.startswith("  name: "):
            value = line[len("  name: "):].strip()
            names.append(json.loads(value) if value.startswith('"') else value.strip("'"))
    return names
