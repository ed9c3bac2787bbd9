"""The HTTP side of the service: body limit, one-line errors and ``GET /health``.

Everything a client gets back as an error is ``{"error": "<one line>"}`` with a 4xx (or
5xx) status: oversized bodies are refused with 413 from the ``Content-Length`` header (or,
for a chunked body, as soon as the bytes read pass the limit) before any parsing; malformed
JSON and bodies that are not a JSON object get 400 from FastAPI's body check, and bodies
that :class:`~.requests.PredictRequest` refuses 422 (:func:`_invalid_body`); a request the
HTTP parser cannot read (a malformed ``Content-Length``, say) gets 400 from
:class:`JsonErrorProtocol`; a request not answered within ``timeout`` seconds gets 504
(:class:`Deadline`); the forecasting worker's refusals keep their own status (:mod:`.api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from seqforecast.serve.requests import refusal


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


class Deadline:
    """ASGI middleware: a ``POST`` not answered within ``seconds`` gets 504 then, whatever
    the worker is doing (LitServe's own ``timeout`` counts only the time a request waits in
    its queue, and answers only once a worker takes the request up)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watch))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done or started:  # answered, or answering: let it finish
            await task
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        message = f"no answer within timeout={self.seconds:g} s (the service is busy); try again"
        await error(504, message)(scope, receive, send)


class JsonErrorProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (``http=`` of ``uvicorn.Config``) whose answer to a request it
    cannot parse (a malformed ``Content-Length``, a bad request line) is ``{"error": ...}``
    like every other error of the service, not plain text."""

    def send_400_response(self, msg: str) -> None:
        reason = "malformed request line or headers, e.g. a Content-Length that is not a number"
        body = json.dumps({"error": f"{msg.rstrip('.')}: {reason}"}).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def _invalid_body(exc: RequestValidationError, facts: dict[str, Any]) -> JSONResponse:
    """FastAPI's body check as one line: 400 for a body that is not a JSON object, 422 in
    :func:`~.requests.refusal`'s words for one that :class:`~.requests.PredictRequest`
    refuses."""
    errors = [{**e, "loc": tuple(e.get("loc", ()))[1:]} for e in exc.errors()]  # no "body"
    first = errors[0]
    kind = first.get("type")
    if kind == "json_invalid":
        reason = first.get("ctx", {}).get("error", "not valid JSON")
        at = first["loc"][-1] if first["loc"] else "?"
        return error(400, f"malformed JSON: {reason} (at character {at})")
    if kind == "missing" and not first["loc"]:
        return error(400, "the request body is empty; expected a JSON object")
    if first["loc"] or kind == "request":
        return error(422, refusal(errors, exc.body, facts))
    return error(
        400,
        "the request body must be a JSON object sent with Content-Type: application/json",
    )


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error(exc.status_code, str(exc.detail))


ERRORS = {  # the error answers of POST /predict, for the published schema
    "400": "the body is not a JSON object",
    "413": "the body is too large, or the request asks for more than the work budget",
    "422": "the request does not fit the schema or the model",
    "504": "the request was not answered within timeout seconds",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the error answers that the service gives, ``{"error": "<one
    line>"}``, in place of FastAPI's default 422 (FastAPI's "Extending OpenAPI")."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        error = {"type": "object", "properties": {"error": {"type": "string"}}}
        schema["components"]["schemas"]["Error"] = {**error, "required": ["error"]}
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        answers = schema["paths"]["/predict"]["post"]["responses"]
        answers.update({k: {"description": v, "content": body} for k, v in ERRORS.items()})
        app.openapi_schema = schema
    return app.openapi_schema


def add_routes(app: FastAPI, facts: dict[str, Any], ready: Any) -> None:
    """``GET /health`` (the model's facts; 503 until every worker is ready), the error
    format and its schema; ``ready()`` says whether the workers are ready."""

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = bool(ready())
        return JSONResponse({"status": "ok" if ok else "starting", **facts}, 200 if ok else 503)

    app.add_exception_handler(RequestValidationError, lambda r, exc: _invalid_body(exc, facts))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_exception_handler(HTTPException, _http_error)
