"""Helpers of the web UI's tests (``dedupe ui`` as a real process, and HTTP without a
browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dedupe_testing import CLI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    first_line: str


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    """One GET, redirects not followed, errors as answers."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return Answer(r.status, r.read(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return Answer(e.code, e.read(), {k.lower(): v for k, v in e.headers.items()})


@contextmanager
def serve_ui(repo: Path, *args: str, listen: str | None = None, wait_path: str = "/",
             token: str | None = None) -> Iterator[Served]:
    """``dedupe ui`` on a free port until the block ends; waits until it answers."""
    port = free_port()
    listen = listen or f"127.0.0.1:{port}"
    env = {**os.environ, "DEDUPE_REPO": str(repo)}
    env.pop("DEDUPE_DEBUG", None)
    p = subprocess.Popen([*CLI, "ui", "--listen", listen, "--refresh", "0.5", *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None
        first = p.stdout.readline().decode()
        url = f"http://127.0.0.1:{listen.rsplit(':', 1)[1]}"
        deadline = time.monotonic() + 60
        while True:
            if p.poll() is not None:
                raise AssertionError(f"dedupe ui exited {p.returncode}: {first} {p.stderr.read().decode()}")
            try:
                get(url + wait_path, {"authorization": f"Bearer {token}"} if token else {}, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Served(url, p, first)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(check: object, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
