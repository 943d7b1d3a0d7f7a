"""Bearer tokens from the environment (``EMO_STREAM_TOKENS``, comma-separated), checked on every endpoint.

A token is accepted as ``Authorization: Bearer <token>`` or as the ``token`` query parameter, because a Twilio
``<Stream url=...>`` cannot set headers. Comparison is constant-time; tokens are never logged (the access log
of ``app.py`` leaves the query string out).
"""

from __future__ import annotations

import hmac
import os

from aiohttp import web

from emostream.stream.errors import UserError

TOKENS_ENV = "EMO_STREAM_TOKENS"
# What an HTTP request without a good token gets (401), from the single-process server and the cluster's ingress.
REFUSED = "missing or wrong token: send Authorization: Bearer <token> or ?token=\n"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def tokens_from_env(required: bool) -> tuple[bytes, ...]:
    """The accepted tokens; none set while ``server.require_token`` is true is a start-up error."""
    tokens = tuple(t.strip().encode() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip())
    if required and not tokens:
        raise UserError(f"no tokens: set {TOKENS_ENV} (comma-separated) or, on a trusted network only, "
                        "server.require_token: false in the config")
    return tokens


def presented(authorization: str, query_token: str) -> str:
    """The token a client presented: the ``Authorization`` header's bearer token, else the ``token`` parameter.
    Plain strings, so that the aiohttp server and the cluster's ASGI ingress check tokens the same way."""
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return query_token


def allowed(request: web.Request, tokens: tuple[bytes, ...]) -> bool:
    return token_ok(presented(request.headers.get("Authorization", ""), request.query.get("token", "")), tokens)


def token_ok(given: str, tokens: tuple[bytes, ...]) -> bool:
    if not tokens:
        return True
    matches = [hmac.compare_digest(given.encode(), t) for t in tokens]  # every token compared: no timing by position
    return any(matches)
