"""LXD's database: SQL dumps (``/internal/sql``, else ``lxd sql``) and the disaster
recovery API (``/internal/recover``, docs/lxd.md section 7)."""

from __future__ import annotations

import os
import subprocess
from typing import Literal

from dedupe.lxd.errors import LXDError, LXDStreamBroken, LXDUnreachable
from dedupe.lxd.api.records import Record
from dedupe.lxd.api.transport import Transport


class Database(Transport):
    def sql_dump(self, database: Literal["global", "local"]) -> bytes:
        """The database as SQL text (``lxd sql <db> .dump``): GET /internal/sql, which
        only root on the unix socket may use. If the API refuses, run ``lxd sql``
        (local socket only: it talks to the daemon of $LXD_DIR)."""
        if database not in ("global", "local"):
            raise ValueError(f"LXD database is 'global' or 'local', not {database!r}")
        try:
            meta = self._sync(
                "GET",
                ["internal", "sql"],
                project=False,
                params={"database": database, "schema": 0},
            )
            return str((meta or {}).get("text", "")).encode()
        except LXDError as e:
            if isinstance(e, (LXDUnreachable, LXDStreamBroken)) or self.socket_path is None:
                raise
            return self._sql_dump_cli(database, e)

    def _sql_dump_cli(self, database: str, api_error: LXDError | None = None) -> bytes:
        assert self.socket_path is not None
        env = dict(os.environ, LXD_DIR=str(self.socket_path.parent))
        try:
            done = subprocess.run(
                ["lxd", "sql", database, ".dump"],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LXDError(
                f"LXD database dump ({database}) via `lxd sql` failed: {e}"
                + (f"; the API said: {api_error}" if api_error else "")
            ) from e
        if done.returncode != 0:
            raise LXDError(
                f"LXD database dump ({database}) via `lxd sql` at {self.socket_path} failed: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done.stdout

    def recover_validate(self, pools: list[Record]) -> Record:
        """POST /internal/recover/validate: which volumes on the pools LXD does not know
        (``UnknownVolumes``) and what they need first (``DependencyErrors``). Existing
        pools are given by name only; lost ones with driver and config.source."""
        result = self._sync(
            "POST", ["internal", "recover", "validate"], project=False, json={"pools": pools}
        )
        return dict(result or {})

    def recover_import(self, pools: list[Record]) -> Record:
        """POST /internal/recover/import: re-create the database records of everything
        ``recover_validate`` found."""
        result = self._sync(
            "POST", ["internal", "recover", "import"], project=False, json={"pools": pools}
        )
        return dict(result or {})
