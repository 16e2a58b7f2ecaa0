"""The API's one error boundary: every handler, unary or streaming, ends its errors here.

A domain error (``SmsError``) becomes its gRPC status with google.rpc details,
from the one table in api/errors.py. Anything else is a bug: it is logged
with its traceback and the caller gets INTERNAL "internal error", never the
exception's text. A request the interceptor could not decode (``Malformed``)
is answered with its validation error. A stream ends with the status of the
error that stopped it, after the responses it already sent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from smsgw.api.errors import grpc_code, rpc_status, trailing_metadata
from smsgw.api.interceptors import Malformed
from smsgw.domain import errors

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")


@contextlib.asynccontextmanager
async def translated(context: Context, rpc: str) -> AsyncIterator[None]:
    """Ends the call with the status of whatever error escapes the block."""
    try:
        yield
    except grpc.aio.AbortError:
        raise  # the call already carries its status
    except errors.SmsError as exc:
        await abort(context, exc)
    except Exception:
        log.exception("unexpected error in %s", rpc)
        await abort(context, errors.SmsError("internal error"))


async def abort(context: Context, error: errors.SmsError) -> NoReturn:
    status = rpc_status(error)
    await context.abort(grpc_code(error), status.message, trailing_metadata(status))


def decoded(request: Request | Malformed) -> Request:
    """The request, or its validation error when its bytes did not decode."""
    if isinstance(request, Malformed):
        raise request.error()
    return request


async def decoded_stream(requests: AsyncIterator[Request | Malformed]) -> AsyncIterator[Request]:
    async for request in requests:
        yield decoded(request)


def unary(
    handler: Callable[[Servicer, Request, Context], Awaitable[Response]],
) -> Callable[[Servicer, Request | Malformed, Context], Awaitable[Response]]:
    @functools.wraps(handler)
    async def handle(self: Servicer, request: Request | Malformed, context: Context) -> Response:
        async with translated(context, handler.__name__):
            return await handler(self, decoded(request), context)
        raise AssertionError("unreachable: the boundary aborts the call")

    return handle


def server_stream(
    handler: Callable[[Servicer, Request, Context], AsyncGenerator[Response, None]],
) -> Callable[[Servicer, Request | Malformed, Context], AsyncIterator[Response]]:
    @functools.wraps(handler)
    async def handle(self: Servicer, request: Request | Malformed,
                     context: Context) -> AsyncIterator[Response]:
        async with translated(context, handler.__name__), contextlib.aclosing(
                handler(self, decoded(request), context)) as responses:
            async for response in responses:
                yield response

    return handle


def bidi_stream(
    handler: Callable[[Servicer, AsyncIterator[Request], Context],
                      AsyncGenerator[Response, None]],
) -> Callable[[Servicer, AsyncIterator[Request | Malformed], Context], AsyncIterator[Response]]:
    """A request that does not decode raises its validation error where the handler reads it."""

    @functools.wraps(handler)
    async def handle(self: Servicer, requests: AsyncIterator[Request | Malformed],
                     context: Context) -> AsyncIterator[Response]:
        async with translated(context, handler.__name__), contextlib.aclosing(
                handler(self, decoded_stream(requests), context)) as responses:
            async for response in responses:
                yield response

    return handle
