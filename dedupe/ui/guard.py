"""Who may ask: an ASGI middleware in front of every route of ``dedupe ui``.

- With a token (required for any listen address other than loopback): every request
  carries it, as ``?token=``, an ``Authorization: Bearer`` header, or the cookie set
  the first time the token came in the URL (then the browser is sent to the same URL
  without it, so it does not stay in the address bar or the history). Compared in
  constant time. Anything else gets 401.
- Without a token (loopback only): the Host header must name the loopback address,
  so a web page elsewhere cannot reach the UI through DNS rebinding.
- Every response says: no caching, no referrer, no framing, scripts and styles only
  from the UI itself (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl, urlencode

COOKIE = "dedupe_ui_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
]


class Guard:
    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if self.token is None:
            host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").endswith("]") \
                else headers.get("host", "")
            if host not in LOOPBACK_HOSTS:
                await _plain(send, 403, "dedupe ui: this address is served on loopback only")
                return
        else:
            in_url = next((v for k, v in query if k == "token"), None)
            bearer = headers.get("authorization", "")
            given = in_url or (bearer[7:] if bearer.lower().startswith("bearer ") else None) or _cookie(headers)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _plain(send, 401, "dedupe ui: a token is needed (open the URL dedupe ui printed, "
                                        "or send Authorization: Bearer TOKEN)")
                return
            if in_url is not None and scope.get("method") == "GET":
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                location = scope.get("path", "/") + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()), *HEADERS]})
                await send({"type": "http.response.body", "body": b""})
                return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _cookie(headers: dict[str, str]) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _plain(send: Any, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS]})
    await send({"type": "http.response.body", "body": (text + "\n").encode()})
