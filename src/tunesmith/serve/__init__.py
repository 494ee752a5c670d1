"""Serve a run over an OpenAI-compatible HTTP API: one shared base model, adapters chosen per request.

tunesmith serve runs/support --adapter billing=runs/billing --port 8000
curl localhost:8000/v1/chat/completions -d '{"model": "support", "messages": [...]}'
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from tunesmith.errors import ConfigError

log = logging.getLogger("tunesmith")

MAX_BATCH = 32  # requests decoding at once by default (`--max-batch`); the others wait in the queue


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_adapters(specs: list[str]) -> dict[str, str]:
    """`NAME=PATH` pairs from the command line, in order; names must be unique."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"'{spec}' is not NAME=PATH", field="--adapter")
        if name in out:
            raise ConfigError(f"the name '{name}' is given twice", field="--adapter")
        out[name] = path
    return out


def serve(
    run_dir: str | Path,
    *,
    adapters: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_tokens: int = 1024,
    max_body_bytes: int = 1 << 20,
    max_queue: int = 256,
    request_timeout: float = 300.0,
    free_text: bool = False,
    max_batch: int = MAX_BATCH,
) -> None:
    """Load the run (and adapters) once and answer requests until SIGINT/SIGTERM, finishing those in flight.

    A run with a label set (labels.json) answers chat requests with a label unless `free_text`."""
    import uvicorn

    from tunesmith.serve.app import Limits, create_app
    from tunesmith.serve.engine import load_engine

    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"binding to {host} lets other machines use the model: pass --api-key KEY (clients "
            "then send 'Authorization: Bearer KEY'), or keep the default 127.0.0.1",
            field="--host",
        )
    engine = load_engine(run_dir, adapters, max_queue=max_queue, free_text=free_text, max_active=max_batch)
    limits = Limits(max_body_bytes=max_body_bytes, max_tokens=max_tokens, request_timeout=request_timeout)
    app = create_app(engine, api_key=api_key, limits=limits)
    log.info(
        "serving %s on http://%s:%d/v1 (models: %s)%s",
        run_dir,
        host,
        port,
        ", ".join(engine.models),
        "" if api_key else " without an API key",
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)


__all__ = ["is_loopback", "parse_adapters", "serve"]
