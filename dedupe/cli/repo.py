"""Making a repository and managing its key: ``init``, ``key change-passphrase|export|import``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dedupe import api
from dedupe.cli.common import common, other_passphrase, other_passphrase_options
from dedupe.cli.common import ctx as _ctx
from dedupe.passphrase import for_this, from_environment

@click.command()
@click.option("--encryption", type=click.Choice(["aes-256-gcm", "none"]), default="aes-256-gcm", show_default=True,
              help="Encrypt and authenticate everything stored (the key is sealed under a passphrase).")
@click.option("--copy-params-from", metavar="REPO",
              help="Use REPO's chunker parameters and id key, so that `dedupe copy` between them deduplicates.")
@other_passphrase_options("from", "--copy-params-from")
@common
def init(encryption: str, copy_params_from: str | None, repo: str | None, as_json: bool | None,
         quiet: bool | None) -> None:
    """Create a repository."""
    c = _ctx(repo, as_json, quiet)
    passphrase = from_environment(confirm=True, explicit=c.options.passphrase) if encryption != "none" else None
    r = api.init(c.location(), passphrase=passphrase, copy_params_from=copy_params_from, options=c.options,
                 copy_params_passphrase=other_passphrase("from"))
    c.out({"repository": c.location(), "repo_id": r.config.repo_id.hex(), "encryption": encryption},
          lambda: (f"created repository {c.location()} (id {r.config.repo_id.hex()[:12]}, encryption {encryption})"
                   + ("\nkeep the passphrase safe, and a copy of the key: dedupe key export FILE"
                      if passphrase is not None else "")))


@click.group()
def key() -> None:
    """Manage the key of an encrypted repository."""


@key.command("change-passphrase")
@common
def key_change_passphrase(repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Seal the key under a new passphrase ($DEDUPE_NEW_PASSPHRASE, or a prompt)."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    new = os.environ.get("DEDUPE_NEW_PASSPHRASE")
    if new is None:
        if not sys.stdin.isatty():
            raise click.UsageError("set DEDUPE_NEW_PASSPHRASE or run on a terminal")
        first = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True)
        new = first
    api.change_passphrase(r, os.fsencode(new))
    c.out({"changed": True}, lambda: "passphrase changed")


@key.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@common
def key_export(path: Path, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Write a copy of the key file to PATH (mode 0600; still needs the passphrase)."""
    c = _ctx(repo, as_json, quiet)
    api.export_key(c.open(), path)
    c.out({"exported": str(path)}, lambda: f"key exported to {path}; store it away from the repository")


@key.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
def key_import(path: Path, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Put an exported key file back into a repository whose key file was lost."""
    c = _ctx(repo, as_json, quiet)
    api.import_key(c.storage(), path, for_this(c.options.passphrase))
    c.out({"imported": str(path)}, lambda: f"key imported from {path}")


COMMANDS = (init, key)
