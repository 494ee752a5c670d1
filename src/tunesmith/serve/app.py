"""The OpenAI-compatible HTTP API (FastAPI): /v1/models, /v1/chat/completions, /v1/completions, SSE streaming.

Requests are validated here and answered with OpenAI-style error bodies and clear 4xx codes; valid ones
become `Job`s for the engine's worker, whose events reach the request through an asyncio queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from tunesmith.data.types import Message
from tunesmith.render import render_prompt
from tunesmith.serve import protocol as P
from tunesmith.serve.engine import Engine, Job, QueueFull, ServedModel


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024  # most tokens one request may ask for
    default_max_tokens: int = 256  # chat answers when the request names none (completions: 16, as OpenAI)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                413: "request_too_large", 503: "server_busy"}.get(self.status, "server_error")
        return JSONResponse({"error": {"message": self.message, "type": kind, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


def create_app(engine: Engine, *, api_key: str | None = None, limits: Limits = Limits()) -> FastAPI:
    """The API over one engine. With `api_key`, every /v1 request must send `Authorization: Bearer KEY`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.close()  # uvicorn has let in-flight requests finish; drain and stop the worker

    app = FastAPI(title="tunesmith", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return e.response()

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")

    async def body_of(request: Request, schema):
        too_large = ApiError(413, f"request body over {limits.max_body_bytes} bytes")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > 8 * limits.max_body_bytes:
            raise too_large  # not even read: the connection is closed under the sender
        data, seen = bytearray(), 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen <= limits.max_body_bytes:
                data += chunk
            elif seen > 8 * limits.max_body_bytes:
                raise too_large
        if seen > limits.max_body_bytes:  # read to the end (discarded), so a client still sending gets the 413
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

    def served(name: str) -> ServedModel:
        if name not in engine.models:
            raise ApiError(404, f"model '{name}' does not exist; this server has: {', '.join(engine.models)}",
                           param="model", code="model_not_found")
        return engine.models[name]

    def budget(req, prompt: list[int], default: int) -> int:
        asked = req.requested_tokens
        if asked is not None and asked > limits.max_tokens:
            raise ApiError(400, f"max_tokens {asked} is over this server's limit of {limits.max_tokens}",
                           param="max_tokens")
        room = engine.context - len(prompt)
        if room < 1:
            raise ApiError(400, f"the prompt is {len(prompt)} tokens; the model's context is {engine.context}",
                           param="messages", code="context_length_exceeded")
        if asked is not None and asked > room:
            raise ApiError(400, f"prompt ({len(prompt)} tokens) + max_tokens ({asked}) exceed the model's "
                           f"context of {engine.context} tokens", param="max_tokens", code="context_length_exceeded")
        return min(asked or min(default, limits.max_tokens), room)

    def start(model: ServedModel, req, prompt: list[int], max_tokens: int) -> tuple[Job, asyncio.Queue]:
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def emit(event: tuple) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening any more
                pass

        job = Job(model, prompt, max_tokens, emit, temperature=req.temperature, top_p=req.top_p,
                  stop=list(req.stop or []), seed=req.seed)
        try:
            engine.submit(job)
        except QueueFull as e:
            raise ApiError(503, f"server busy: {e}; retry later") from None
        return job, events

    async def collect(job: Job, events: asyncio.Queue) -> tuple[str, str, int]:
        parts = []
        try:
            while True:
                event = await events.get()
                if event[0] == "text":
                    parts.append(event[1])
                elif event[0] == "done":
                    return "".join(parts), event[1], event[2]
                else:
                    raise ApiError(500, event[1])
        finally:
            job.cancelled.set()  # no-op when finished; stops the worker when the client went away

    async def sse(job: Job, events: asyncio.Queue, first: dict | None, piece, last, usage_of) -> AsyncIterator[str]:
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
                    yield line({"error": {"message": event[1], "type": "server_error"}})
                    break
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled.set()

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": list(engine.models), "waiting": engine.waiting}

    @app.get("/v1/models")
    async def list_models(request: Request):
        authorize(request)
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created,
                                            "owned_by": "tunesmith"} for m in engine.models.values()]}

    @app.get("/v1/models/{name}")
    async def get_model(name: str, request: Request):
        authorize(request)
        m = served(name)
        return {"id": m.name, "object": "model", "created": m.created, "owned_by": "tunesmith"}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorize(request)
        req = await body_of(request, P.ChatRequest)
        model = served(req.model)
        messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in req.messages]
        prompt = render_prompt(messages, engine.tokenizer, system_prompt=model.system_prompt)
        job, events = start(model, req, prompt, budget(req, prompt, limits.default_max_tokens))
        rid = P.new_id("chatcmpl")
        if not req.stream:
            text, finish, n = await collect(job, events)
            return P.chat_response(rid, model.name, text, finish, P.usage(len(prompt), n))
        usage_of = (lambda n: P.usage_chunk(rid, model.name, "chat.completion.chunk", P.usage(len(prompt), n))) \
            if req.include_usage else None
        return StreamingResponse(sse(job, events, P.chat_chunk(rid, model.name, {"role": "assistant", "content": ""}),
                                     lambda t: P.chat_chunk(rid, model.name, {"content": t}),
                                     lambda f: P.chat_chunk(rid, model.name, {}, f), usage_of),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/completions")
    async def completions(request: Request):
        authorize(request)
        req = await body_of(request, P.CompletionRequest)
        model = served(req.model)
        prompt = list(engine.tokenizer(req.prompt).input_ids)
        if not prompt:
            raise ApiError(400, "the prompt is empty", param="prompt")
        job, events = start(model, req, prompt, budget(req, prompt, 16))
        rid = P.new_id("cmpl")
        if not req.stream:
            text, finish, n = await collect(job, events)
            return P.completion_response(rid, model.name, text, finish, P.usage(len(prompt), n))
        usage_of = (lambda n: P.usage_chunk(rid, model.name, "text_completion", P.usage(len(prompt), n))) \
            if req.include_usage else None
        return StreamingResponse(sse(job, events, None, lambda t: P.completion_response(rid, model.name, t, None, None),
                                     lambda f: P.completion_response(rid, model.name, "", f, None), usage_of),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app
