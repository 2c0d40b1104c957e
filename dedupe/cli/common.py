"""What every command module of the command line shares: the output context (JSON or
text, the progress line), the common options, the LXD connection options, sizes for
humans, and warnings that make the exit code 3."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import click

from dedupe import api
from dedupe.passphrase import ExplicitPassphrase
from dedupe.progress import Progress, ProgressCallback


def human(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def read_new(read: int, new_stored: int) -> str:
    """The one way sizes of a backup are said: the bytes read, and "new", the stored
    bytes it added to the repository (after deduplication and compression; ``list``'s
    NEW column)."""
    return f"{human(read)} read, {human(new_stored)} new"


class StatusLine:
    """A one-line progress display on a terminal's stderr, redrawn at most every
    ``INTERVAL`` seconds (and when a new object starts, or one is complete)."""

    INTERVAL = 0.1

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.shown = False
        self.drawn_at = float("-inf")
        self.drawn_what: tuple[str, str] | None = None

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        what = (p.phase, p.name)
        complete = bool(p.bytes_total) and p.bytes_done >= p.bytes_total
        if now - self.drawn_at < self.INTERVAL and what == self.drawn_what and not complete:
            return
        self.drawn_at, self.drawn_what = now, what
        elapsed = max(now - self.start, 1e-6)
        rate = p.bytes_done / elapsed
        parts = [f"{p.phase} {p.name}", f"{human(p.bytes_done)}"]
        if p.bytes_total:
            parts[-1] += f" / {human(p.bytes_total)} ({100 * p.bytes_done / p.bytes_total:.0f}%)"
        if p.phase == "backup":
            parts.append(f"{human(p.new_stored)} new")
        parts.append(f"{human(rate)}/s")
        line = "  ".join(parts)
        sys.stderr.write("\r\033[K" + line[:200])
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class Context:
    def __init__(self, repo: str | None, as_json: bool, quiet: bool,
                 options: api.RepoOptions = api.RepoOptions()) -> None:
        self.repo_location = repo
        self.json = as_json
        self.quiet = quiet
        self.options = options
        self.status: StatusLine | None = None

    def location(self) -> str:
        if not self.repo_location:
            raise click.UsageError("no repository given: use --repo PATH or set DEDUPE_REPO")
        return self.repo_location

    def open(self, load_index: bool = True) -> Any:
        return api.open_repo(self.location(), options=self.options, load_index=load_index)

    def storage(self) -> Any:
        return api.open_storage(self.location(), self.options)

    def progress(self) -> ProgressCallback | None:
        if self.json or self.quiet or not sys.stderr.isatty():
            return None
        self.status = StatusLine()
        return self.status

    def out(self, data: Any, text: Callable[[], str]) -> None:
        if self.status is not None:
            self.status.done()
        if self.json:
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        elif not self.quiet:
            click.echo(text())


# The options that say how to reach and unlock the repository, given before or after the
# command. Their values go into the click context's ``meta`` (shared by the group and the
# command; the command's, parsed later, wins) and from there into ``api.RepoOptions``;
# the environment is read only where the command line says nothing.
_ACCESS_OPTIONS = (
    ("--passphrase-file", "FILE", "Read the passphrase from FILE ($DEDUPE_PASSPHRASE_FILE)."),
    ("--passphrase-command", "CMD", "Run CMD to get the passphrase ($DEDUPE_PASSPHRASE_COMMAND)."),
    ("--s3-endpoint", "URL", "S3 server for s3:// repositories ($DEDUPE_S3_ENDPOINT; default $AWS_ENDPOINT_URL "
                             "or AWS)."),
)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[f"dedupe.{param.name}"] = value


def _given(name: str) -> str | None:
    value: str | None = click.get_current_context().meta.get(f"dedupe.{name}")
    return value


def access_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--passphrase-file``, ``--passphrase-command`` and ``--s3-endpoint``."""
    for name, metavar, text in reversed(_ACCESS_OPTIONS):
        f = click.option(name, metavar=metavar, expose_value=False, callback=_remember, help=text)(f)
    return f


def common(f: Callable[..., Any]) -> Callable[..., Any]:
    """--repo, --json, --quiet and the access options on every command (they may also
    come before it). The command's --repo has no environment variable of its own: the
    group's ($DEDUPE_REPO) is the fallback, so ``dedupe --repo B cmd`` uses B."""
    f = access_options(f)
    f = click.option("--quiet", "-q", is_flag=True, default=None, help="Print nothing but errors.")(f)
    f = click.option("--json", "as_json", is_flag=True, default=None, help="Print JSON only.")(f)
    f = click.option("--repo", "-r", metavar="PATH", help="The repository (default: $DEDUPE_REPO).")(f)
    return f


class LXDConnection(NamedTuple):
    """How to reach LXD: the local unix socket unless ``remote`` is an https:// URL."""

    remote: str | None
    cert: Path | None
    key: Path | None
    server_cert: Path | None


def lxd_connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--server-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="The remote LXD's certificate (pinned) or a CA bundle.")(f)
    f = click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Client key for --remote.")(f)
    f = click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Client certificate for --remote.")(f)
    f = click.option("--remote", metavar="URL",
                     help="LXD at https://HOST:PORT (default: the local unix socket).")(f)
    return f


def other_passphrase_options(direction: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--<direction>-passphrase-file`` and ``--<direction>-passphrase-command`` for the
    second repository of a command (``$DEDUPE_<DIRECTION>_PASSPHRASE...``; without them,
    the first repository's passphrase is tried)."""
    variable = f"DEDUPE_{direction.upper()}_PASSPHRASE"

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(f"--{direction}-passphrase-command", metavar="CMD", expose_value=False,
                         callback=_remember, help=f"Run CMD for the passphrase of {what} (${variable}_COMMAND).")(f)
        return click.option(f"--{direction}-passphrase-file", metavar="FILE", expose_value=False,
                            callback=_remember,
                            help=f"Read the passphrase of {what} from FILE (${variable}_FILE).")(f)
    return add


def other_passphrase(direction: str) -> ExplicitPassphrase:
    """What ``other_passphrase_options(direction)`` were given on the command line."""
    return ExplicitPassphrase(_given(f"{direction}_passphrase_file"), _given(f"{direction}_passphrase_command"))


def ctx(repo: str | None, as_json: bool | None, quiet: bool | None) -> Context:
    """The command's context: its own --repo/--json/--quiet, else the ones given before it
    (the group's --repo falls back to $DEDUPE_REPO); the access options from either place."""
    parent: Context = click.get_current_context().obj
    options = api.RepoOptions(ExplicitPassphrase(_given("passphrase_file"), _given("passphrase_command")),
                              _given("s3_endpoint"))
    return Context(repo or parent.repo_location, bool(as_json) or parent.json, bool(quiet) or parent.quiet, options)


def warn_exit(c: Context, warnings: list[str], what: str) -> None:
    """Warnings go to stderr (even with --json) and make the exit code 3."""
    if not warnings:
        return
    for w in warnings:
        click.echo(f"dedupe: warning: {w}", err=True)
    click.echo(f"dedupe: {what} finished with {len(warnings)} warning(s)", err=True)
    sys.exit(3)


class CompressionSpec(click.ParamType):
    """``zstd,N`` (N from 1 to 22), ``zstd`` (level 3) or ``none``, as a zstd level (0: none)."""

    name = "compression"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from dedupe.api import compression_levels

        DEFAULT_ZSTD_LEVEL, MAX_ZSTD_LEVEL = compression_levels()
        spec = str(value).strip().lower()
        if spec == "none":
            return 0
        codec, _, level = spec.partition(",")
        if codec == "zstd" and not level:
            return DEFAULT_ZSTD_LEVEL
        if codec == "zstd" and level.isascii() and level.isdigit() and 1 <= int(level) <= MAX_ZSTD_LEVEL:
            return int(level)
        self.fail(f"{value!r}: use zstd,N (N from 1 to {MAX_ZSTD_LEVEL}), zstd or none", param, ctx)


def backup_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """On the backup commands: ``--host NAME``, the host the backup is of (restic's
    ``--host``; prune applies its rules to each group of each host on its own), and
    ``--compression``, how new chunks are compressed (borg's ``--compression``)."""
    f = click.option("--compression", "compression", metavar="SPEC", type=CompressionSpec(), default="zstd,3",
                     envvar="DEDUPE_COMPRESSION", show_default=True,
                     help="How new chunks are compressed: zstd,N (N from 1 to 22; lower is faster), or none "
                          "($DEDUPE_COMPRESSION). Chunks already stored stay as they are.")(f)
    f = metrics_file_option(f)
    return click.option("--host", metavar="NAME", envvar="DEDUPE_HOST",
                        help="Record the backup as of host NAME ($DEDUPE_HOST; default: this machine's name, "
                             "for backup lxd the LXD server's name).")(f)


def metrics_file_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--metrics-file FILE``: afterwards, write ``stats --format prometheus`` there
    (atomically) for node_exporter's textfile collector (``write_metrics``)."""
    return click.option("--metrics-file", metavar="FILE", expose_value=False, callback=_remember,
                        help="Afterwards write the repository's Prometheus metrics to FILE, atomically "
                             "(for node_exporter's textfile collector).")(f)


def write_metrics(repo: Any) -> list[str]:
    """Write the metrics file ``--metrics-file`` names (if any) for ``repo``; what went
    wrong comes back as warnings (the command's own work is done by then)."""
    path = _given("metrics_file")
    if path is None:
        return []
    from dedupe import metrics
    from dedupe.errors import DedupeError
    from repo_format.errors import FormatError
    try:
        api.load_index_if_absent(repo)  # opened without its index (prune, gc)
        metrics.write_file(Path(path), metrics.for_repository(repo))
    except OSError as e:
        return [f"metrics file {path}: not written ({e.strerror or e})"]
    except (DedupeError, FormatError) as e:
        return [f"metrics file {path}: not written ({e})"]
    return []
