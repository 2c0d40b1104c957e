"""The ``dedupe`` command line: thin wrappers over ``dedupe.api``; the only place that prints.

The group is here; each family of commands is a module of its own: ``repo`` (init, key),
``backup``, ``browse`` (list, show, ls, diff), ``restore``, ``maintenance`` (check, prune,
forget, protect, gc, stats), ``copy``; the LXD commands are ``dedupe.lxd.cli``'s.
``common`` holds what they share (options, the context, output).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from dedupe.cli.common import Context, access_options
from dedupe.errors import DedupeError
from dedupe.memory import bound_malloc, fewer_gc_passes
from repo_format.errors import FormatError

__all__ = ["main"]


class DedupeGroup(click.Group):
    """Turns errors into one line on stderr and the error's exit code: the README's
    promise holds for usage errors too (click's own four-line ``Usage: ... Error: ...``
    becomes ``dedupe: <what>`` with exit code 2; ``--help`` shows the usage)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:  # ``dedupe`` alone: the help, as before
            raise
        except click.ClickException as e:  # the group's own options
            _fail(_one_line(e), e.exit_code)
            raise  # not reached

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DedupeError, FormatError) as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:
            sys.stderr.close()
            os._exit(141)
        except click.exceptions.NoArgsIsHelpError:  # ``dedupe backup`` alone: its help
            raise
        except click.ClickException as e:  # a command's options or arguments
            _fail(_one_line(e), e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: say what, without a traceback unless asked
            if os.environ.get("DEDUPE_DEBUG"):
                raise
            _fail(f"internal error: {type(e).__name__}: {e} (set DEDUPE_DEBUG=1 for a traceback)", 1)


def _one_line(e: click.ClickException) -> str:
    """click's message without its usage block, after the command it concerns (``backup
    stream: ...``); its newlines (a few of click's messages have them) become spaces."""
    message = " ".join(e.format_message().split())
    names = []
    ctx = getattr(e, "ctx", None)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return f"{' '.join(reversed(names))}: {message}" if names else message


def _fail(message: str, code: int) -> None:
    sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "")
    click.echo(f"dedupe: {message}", err=True)
    sys.exit(code)


@click.group(cls=DedupeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", "-r", metavar="PATH", envvar="DEDUPE_REPO", help="The repository (default: $DEDUPE_REPO).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@access_options
@click.version_option(package_name="dedupe")
@click.pass_context
def main(ctx: click.Context, repo: str | None, as_json: bool, quiet: bool) -> None:
    """Deduplicating backups of LXD servers.

    Encrypted repositories take their passphrase from --passphrase-file,
    --passphrase-command, $DEDUPE_PASSPHRASE (or its _FILE and _COMMAND forms), or a
    prompt. Options on the command line, before or after the command, win over the
    environment."""
    bound_malloc()
    fewer_gc_passes()
    ctx.obj = Context(repo, as_json, quiet)


def _register_commands() -> None:
    """Every family's commands under ``main`` (and ``backup lxd`` under ``backup``)."""
    from dedupe.cli import backup, browse, copy, maintenance, mount, repo, restore, ui
    from dedupe.lxd import cli as lxd_cli
    for family in (repo, backup, browse, restore, mount, maintenance, copy, ui):
        for command in family.COMMANDS:
            main.add_command(command)
    for command in lxd_cli.BACKUP_COMMANDS:
        backup.backup.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
