"""``dedupe copy --to REPO [ID... | --group G]``: the command over ``dedupe.copy``."""

from __future__ import annotations

import click

from dedupe import api
from dedupe.cli.common import common, human, other_passphrase, other_passphrase_options
from dedupe.cli.common import ctx as _ctx
from dedupe.passphrase import for_other


@click.command("copy")
@click.argument("ids", nargs=-1, metavar="[ID...]")
@click.option("--to", "to", required=True, metavar="REPO",
              help="The target repository (a path or s3://BUCKET/PREFIX).")
@click.option("--group", "-g", help="Only backups of this group (and groups below it).")
@other_passphrase_options("to", "the target")
@common
def copy_cmd(ids: tuple[str, ...], to: str, group: str | None, repo: str | None, as_json: bool | None,
             quiet: bool | None) -> None:
    """Copy backups (all, the given IDs, or a group's) to another repository,
    sending only the chunks it lacks and verifying every chunk sent. Make the
    target with `dedupe init --copy-params-from SOURCE` so copies deduplicate."""
    if ids and group:
        raise click.UsageError("give backup IDs or --group, not both")
    c = _ctx(repo, as_json, quiet)
    source = c.open()
    target = api.open_repo(to, for_other("DEDUPE_TO_PASSPHRASE", to, other_passphrase("to")), c.options)
    res = api.copy(source, target, ids, group, c.progress())

    def text() -> str:
        lines = [f"copied {s[:12]} -> {t[:12]}" for s, t in res.copied]
        if res.skipped:
            lines.append(f"{len(res.skipped)} backup(s) already in {to}")
        lines.append(f"sent {res.chunks_sent} chunks, {human(res.raw_bytes_sent)} "
                     f"({human(res.bytes_sent)} stored); {res.chunks_present} chunks were there already"
                     + ("; re-chunked: the repositories do not share chunker parameters and id key"
                        if res.rechunked and res.copied else ""))
        return "\n".join(lines)

    c.out(res.to_json(), text)


COMMANDS = (copy_cmd,)
