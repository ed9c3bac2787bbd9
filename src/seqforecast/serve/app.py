"""The HTTP side of the service: body limit, one-line errors and ``GET /health``.

Everything a client gets back as an error is ``{"error": "<one line>"}`` with a 4xx (or
5xx) status: oversized bodies are refused with 413 from the ``Content-Length`` header (or,
for a chunked body, as soon as the bytes read pass the limit) before any parsing; malformed
JSON and bodies that are not a JSON object get 400 from FastAPI's body check; the
forecasting worker's refusals keep their own status (:mod:`.api`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self, size: str) -> JSONResponse:
        limit = f"{self.max_bytes / 2**20:g} MiB"
        return error(413, f"request body of {size} exceeds this service's limit of {limit}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await error(400, "Content-Length is not a number")(scope, receive, send)
            elif int(length) > self.max_bytes:
                await self._too_large(f"{int(length)} bytes")(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # No length given (chunked): read up to the limit, then hand the bytes on.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._too_large(f"over {len(body)} bytes")(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's body check (the ``dict`` body of ``decode_request``) as one line."""
    first = exc.errors()[0]
    kind = first.get("type")
    if kind == "json_invalid":
        reason = first.get("ctx", {}).get("error", "not valid JSON")
        at = first["loc"][-1] if len(first.get("loc", ())) > 1 else "?"
        return error(400, f"malformed JSON: {reason} (at character {at})")
    if kind == "missing":
        return error(400, "the request body is empty; expected a JSON object")
    return error(
        400,
        "the request body must be a JSON object sent with Content-Type: application/json",
    )


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error(exc.status_code, str(exc.detail))


def add_routes(app: FastAPI, facts: dict[str, Any], ready: Any) -> None:
    """``GET /health`` (the model's facts; 503 until every worker is ready) and the error
    format; ``ready()`` says whether the workers are ready."""

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = bool(ready())
        return JSONResponse({"status": "ok" if ok else "starting", **facts}, 200 if ok else 503)

    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(HTTPException, _http_error)
