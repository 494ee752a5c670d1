"""The OpenAI-compatible HTTP API (FastAPI): /v1/models, /v1/chat/completions, /v1/completions, SSE streaming.

Requests are validated here and answered with OpenAI-style error bodies and clear 4xx codes; valid ones
become `Job`s for the engine's worker, whose events reach the request through an asyncio queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from tunesmith.data.types import Message
from tunesmith.generation import LabelSet
from tunesmith.render import render_prompt
from tunesmith.serve import protocol as P
from tunesmith.serve.engine import Engine, Job, QueueFull, ServedModel

DISCONNECT_POLL = 0.5  # seconds between checks that a client waiting for a whole answer is still there

Body = TypeVar("Body", bound=BaseModel)
AnyRequest = P.ChatRequest | P.CompletionRequest


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024  # most tokens one request may ask for
    default_max_tokens: int = 256  # chat answers when the request names none (completions: 16, as OpenAI)
    request_timeout: float = 300.0  # seconds a request may take, queued and generating


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> JSONResponse:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            413: "request_too_large",
            503: "server_busy",
            504: "timeout",
        }.get(self.status, "server_error")
        return JSONResponse(
            {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}},
            status_code=self.status,
            headers=self.headers,
        )


class Api:
    """The request handling of one app: checks, job submission, and the replies (whole or streamed).

    Endpoint methods carry no docstring and no return annotation: FastAPI would take them as the OpenAPI
    description and the response model.
    """

    def __init__(self, engine: Engine, api_key: str | None, limits: Limits):
        self.engine, self.api_key, self.limits = engine, api_key, limits

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Runs the engine's worker while the app serves."""
        self.engine.start()
        yield
        self.engine.close()  # uvicorn has let in-flight requests finish; drain and stop the worker

    def authorize(self, request: Request) -> None:
        """With an API key, refuses (401) a request that does not send `Authorization: Bearer KEY`."""
        if self.api_key is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.api_key}".encode()):
            raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")

    async def body_of(self, request: Request, schema: type[Body]) -> Body:
        """The JSON body validated by `schema`; 413 over `max_body_bytes`, 400 for bad JSON or fields."""
        limit = self.limits.max_body_bytes
        too_large = ApiError(413, f"request body over {limit} bytes")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > 8 * limit:
            raise too_large  # not even read: the connection is closed under the sender
        data, seen = bytearray(), 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen <= limit:
                data += chunk
            elif seen > 8 * limit:
                raise too_large
        if seen > limit:  # read to the end (discarded), so a client still sending gets the 413
            raise too_large
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "the request body must be a JSON object")
        try:
            return schema.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ApiError(400, f"{where}: {first['msg']}", param=where) from None

    def served(self, name: str) -> ServedModel:
        """The served model of that name, or 404 naming the ones there are."""
        models = self.engine.models
        if name not in models:
            raise ApiError(
                404,
                f"model '{name}' does not exist; this server has: {', '.join(models)}",
                param="model",
                code="model_not_found",
            )
        return models[name]

    def budget(self, req: AnyRequest, prompt: list[int], default: int) -> int:
        """The tokens to generate: as asked (or `default`), within the server's limit and the context left."""
        asked, context, most = req.requested_tokens, self.engine.context, self.limits.max_tokens
        if asked is not None and asked > most:
            raise ApiError(400, f"max_tokens {asked} is over this server's limit of {most}", param="max_tokens")
        room = context - len(prompt)
        if room < 1:
            raise ApiError(
                400,
                f"the prompt is {len(prompt)} tokens; the model's context is {context}",
                param="messages",
                code="context_length_exceeded",
            )
        if asked is not None and asked > room:
            raise ApiError(
                400,
                f"prompt ({len(prompt)} tokens) + max_tokens ({asked}) exceed the model's context of {context} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return min(asked or min(default, most), room)

    def start(
        self, model: ServedModel, req: AnyRequest, prompt: list[int], max_tokens: int, labels: LabelSet | None = None
    ) -> tuple[Job, asyncio.Queue]:
        """Submits the job (503 when the queue is full); its events arrive on the returned queue."""
        loop, events = asyncio.get_running_loop(), asyncio.Queue[tuple]()

        def emit(event: tuple) -> None:  # called on the worker thread
            with suppress(RuntimeError):  # the event loop is gone (shutdown): nobody is listening any more
                loop.call_soon_threadsafe(events.put_nowait, event)

        job = Job(
            model,
            prompt,
            max_tokens,
            emit,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=list(req.stop or []),
            seed=req.seed,
            labels=labels,
            deadline=time.monotonic() + self.limits.request_timeout,
        )
        try:
            self.engine.submit(job)
        except QueueFull as e:
            raise ApiError(503, f"server busy: {e}; retry later", headers={"Retry-After": "5"}) from None
        return job, events

    async def collect(self, request: Request, job: Job, events: asyncio.Queue) -> tuple[str, str, int]:
        """The whole answer: (text, finish reason, completion tokens). The client's going away cancels the job
        (checked every DISCONNECT_POLL s, so a request abandoned in the queue never runs); a time limit passed is
        a 504, another worker error a 500."""
        parts = []
        try:
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), DISCONNECT_POLL)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        job.cancelled.set()
                        raise ApiError(499, "the client closed the connection") from None
                    if job.expired():  # still queued behind others, or the worker is late to notice
                        job.cancelled.set()
                        limit = self.limits.request_timeout
                        raise ApiError(504, f"the request's time limit passed ({limit:g} s)", code="timeout") from None
                    continue
                if event[0] == "text":
                    parts.append(event[1])
                elif event[0] == "done":
                    return "".join(parts), event[1], event[2]
                elif event[2:] == ("timeout",):
                    raise ApiError(504, f"{event[1]} ({self.limits.request_timeout:g} s)", code="timeout")
                else:
                    raise ApiError(500, event[1])
        finally:
            job.cancelled.set()  # no-op when finished; stops the worker when the client went away

    async def sse(
        self,
        job: Job,
        events: asyncio.Queue,
        first: dict | None,
        piece: Callable[[str], dict],
        last: Callable[[str], dict],
        usage_of: Callable[[int], dict] | None,
    ) -> AsyncIterator[str]:
        """The answer as server-sent events: `first`, a `piece` per text, `last`, the usage, then [DONE]."""

        def line(obj: dict) -> str:
            return f"data: {json.dumps(obj)}\n\n"

        try:
            if first is not None:
                yield line(first)
            while True:
                event = await events.get()
                if event[0] == "text":
                    yield line(piece(event[1]))
                elif event[0] == "done":
                    yield line(last(event[1]))
                    if usage_of is not None:
                        yield line(usage_of(event[2]))
                    break
                else:
                    kind = "timeout" if event[2:] == ("timeout",) else "server_error"
                    yield line({"error": {"message": event[1], "type": kind}})
                    break
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled.set()

    def stream(
        self,
        req: AnyRequest,
        job: Job,
        events: asyncio.Queue,
        first: dict | None,
        piece: Callable[[str], dict],
        last: Callable[[str], dict],
        usage_of: Callable[[int], dict],
    ) -> StreamingResponse:
        """The streamed reply of both endpoints; the usage chunk only when the client asked for it."""
        chunks = self.sse(job, events, first, piece, last, usage_of if req.include_usage else None)
        return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def health(self):
        return {"status": "ok", "models": list(self.engine.models), "waiting": self.engine.waiting}

    async def list_models(self, request: Request):
        self.authorize(request)
        return {
            "object": "list",
            "data": [
                {"id": m.name, "object": "model", "created": m.created, "owned_by": "tunesmith"}
                for m in self.engine.models.values()
            ],
        }

    async def get_model(self, name: str, request: Request):
        self.authorize(request)
        m = self.served(name)
        return {"id": m.name, "object": "model", "created": m.created, "owned_by": "tunesmith"}

    async def chat_completions(self, request: Request):
        self.authorize(request)
        req = await self.body_of(request, P.ChatRequest)
        model = self.served(req.model)
        messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in req.messages]
        prompt = render_prompt(messages, self.engine.tokenizer, system_prompt=model.system_prompt)
        labels = None if req.free_text else model.labels
        job, events = self.start(model, req, prompt, self.budget(req, prompt, self.limits.default_max_tokens), labels)
        rid, name = P.new_id("chatcmpl"), model.name
        if not req.stream:
            text, finish, n = await self.collect(request, job, events)
            return P.chat_response(rid, name, text, finish, P.usage(len(prompt), n))
        return self.stream(
            req,
            job,
            events,
            P.chat_chunk(rid, name, {"role": "assistant", "content": ""}),
            lambda t: P.chat_chunk(rid, name, {"content": t}),
            lambda f: P.chat_chunk(rid, name, {}, f),
            lambda n: P.usage_chunk(rid, name, "chat.completion.chunk", P.usage(len(prompt), n)),
        )

    async def completions(self, request: Request):
        self.authorize(request)
        req = await self.body_of(request, P.CompletionRequest)
        model = self.served(req.model)
        prompt = list(self.engine.tokenizer(req.prompt).input_ids)
        if not prompt:
            raise ApiError(400, "the prompt is empty", param="prompt")
        job, events = self.start(model, req, prompt, self.budget(req, prompt, 16))
        rid, name = P.new_id("cmpl"), model.name
        if not req.stream:
            text, finish, n = await self.collect(request, job, events)
            return P.completion_response(rid, name, text, finish, P.usage(len(prompt), n))
        return self.stream(
            req,
            job,
            events,
            None,
            lambda t: P.completion_response(rid, name, t, None, None),
            lambda f: P.completion_response(rid, name, "", f, None),
            lambda n: P.usage_chunk(rid, name, "text_completion", P.usage(len(prompt), n)),
        )


ERRORS = {
    400: "the request is not valid (its message names the field)",
    401: "missing or wrong API key",
    404: "no such model",
    413: "request body too large",
    503: "the queue is full: retry after the Retry-After header's seconds",
    504: "the request ran past the server's request timeout",
}


def _error_responses(*statuses: int) -> dict:
    ref = {"$ref": "#/components/schemas/Error"}
    return {s: {"description": ERRORS[s], "content": {"application/json": {"schema": ref}}} for s in statuses}


def _request_body(schema: type[BaseModel]) -> dict:
    """The OpenAPI request body of a route that reads and validates its JSON body itself (`Api.body_of`)."""
    ref = {"$ref": f"#/components/schemas/{schema.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def openapi_document(app: FastAPI, models: list[str]) -> dict:
    """The app's OpenAPI document with the request bodies and the error object it speaks; `model` lists the
    models this server serves (`/v1/models`)."""
    from fastapi.openapi.utils import get_openapi
    from pydantic.json_schema import models_json_schema

    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    _, defs = models_json_schema(
        [(P.ChatRequest, "validation"), (P.CompletionRequest, "validation"), (P.ErrorBody, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs["$defs"])
    for name in ("ChatRequest", "CompletionRequest"):
        schemas[name]["properties"]["model"] = {"type": "string", "enum": models, "title": "Model"}
    schemas["Error"] = schemas.pop("ErrorBody")
    return doc


def create_app(engine: Engine, *, api_key: str | None = None, limits: Limits = Limits()) -> FastAPI:
    """The API over one engine. With `api_key`, every /v1 request must send `Authorization: Bearer KEY`."""
    api = Api(engine, api_key, limits)
    app = FastAPI(title="tunesmith", lifespan=api.lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return e.response()

    generating = _error_responses(400, 401, 404, 413, 503, 504)
    app.add_api_route("/health", api.health, methods=["GET"])
    app.add_api_route("/v1/models", api.list_models, methods=["GET"], responses=_error_responses(401))
    app.add_api_route("/v1/models/{name}", api.get_model, methods=["GET"], responses=_error_responses(401, 404))
    for path, endpoint, body in (
        ("/v1/chat/completions", api.chat_completions, P.ChatRequest),
        ("/v1/completions", api.completions, P.CompletionRequest),
    ):
        app.add_api_route(path, endpoint, methods=["POST"], openapi_extra=_request_body(body), responses=generating)
    document = openapi_document(app, list(engine.models))
    app.openapi = lambda: document  # type: ignore[method-assign]  # FastAPI's documented way to extend it
    return app
