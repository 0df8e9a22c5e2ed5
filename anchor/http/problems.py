"""Problem details: the one mapping from errors to HTTP answers (RFC 9457), the middleware
that applies it and counts every request, and the runner whose connections answer what never
reaches the application (a request aiohttp's parser refuses, an exception escaping a handler)
with a problem document too, never a traceback.

I/O only through aiohttp (building responses, one access-log line per request); cost: a
dictionary and a JSON encoding per error answer.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from anchor.auth import middleware
from anchor.errors import (
    AdminUnauthorized,
    AnchorError,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)
from anchor.http.appkeys import METRICS, Handler

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(error: AnchorError, instance: str | None = None) -> web.Response:
    body = error.problem(instance)
    headers = {}
    if isinstance(error, AdminUnauthorized):  # the operator's admin API
        headers["WWW-Authenticate"] = 'Bearer realm="ler-anchor admin"'
    elif isinstance(error, Unauthorized):  # issuers sign their requests
        headers.update(middleware.challenge_headers(error))
    if isinstance(error, RateLimited | StorageUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    return web.json_response(body, status=error.status, content_type=PROBLEM_JSON, headers=headers)


def _http_problem(exc: web.HTTPException, instance: str) -> web.Response:
    body = {
        "type": "about:blank",
        "title": exc.reason,
        "status": exc.status,
        "detail": exc.text
        if exc.text and exc.text != f"{exc.status}: {exc.reason}"
        else exc.reason,
        "instance": instance,
    }
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
    return web.json_response(body, status=exc.status, content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problems_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to problem details once, and count every request."""
    metrics = request.app[METRICS]
    route = request.match_info.route.resource
    label = route.canonical if route is not None else "unmatched"
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except AnchorError as err:
        status = err.status
        return problem_response(err, request.path)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        return _http_problem(exc, request.path)
    finally:
        metrics.observe_request(request.method, label, status, time.perf_counter() - start)


class AccessLog(AbstractAccessLogger):
    """One INFO line per request on ``aiohttp.access``: client address, method and target,
    status, response body bytes and seconds taken. A fixed format, about a third of the cost
    of aiohttp's configurable one, which matters at thousands of requests per second."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.6f',
            request.remote,
            request.method,
            request.path_qs,
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.logger.isEnabledFor(logging.INFO))


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering what happens outside the application (a
    request its HTTP parser refuses: a NUL in a header, a request line over 8 KiB; an
    exception escaping a handler) with a problem document instead of plain text.

    A refused request is the client's fault: one WARNING line naming the client and the
    parser's reason, no traceback (aiohttp logs it at ERROR with the parser's traceback).
    Anything else is logged as aiohttp does, and the client sees no traceback."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status < 500 and isinstance(exc, HttpProcessingError):
            if request.writer.output_size > 0:
                raise ConnectionError("the response is sent already; closing the connection")
            reason = " ".join(exc.message.split())[:300] or type(exc).__name__  # one line
            # not HTTP at all (TLS to this port, a scanner): noise at DEBUG, as aiohttp has it
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.WARNING
            logger.log(
                level, "refused a malformed HTTP request from %s: %s", request.remote, reason
            )
            detail = f"malformed HTTP request: {reason}"
        else:
            super().handle_error(request, status, exc, message)  # logs; raises if sent
            detail = HTTPStatus(status).description
        body = {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
        response = web.json_response(body, status=status, content_type=PROBLEM_JSON)
        response.force_close()
        return response


class ProblemServer(web.Server):
    """A :class:`aiohttp.web.Server` whose connections use :class:`ProblemRequestHandler`."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` serving through :class:`ProblemServer`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner :func:`serve` uses: signals are the caller's, access lines :class:`AccessLog`,
    errors outside the application problem documents (:class:`ProblemRequestHandler`)."""
    return ProblemAppRunner(app, handle_signals=False, access_log_class=AccessLog)
