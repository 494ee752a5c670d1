"""`tunesmith push` through the real CLI: the dry run's listing, every refusal and failure as one line, and a real
upload to a loopback fake of the hub's API that records what arrives."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tiny import cli

HUB_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_ENDPOINT")
HUB_VARIABLES += ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TOKEN = "hf_fake_write_token"


class FakeHub:
    """The hub API calls `create_repo` (+ `repo_info`, `create_branch`) and `upload_folder` make, on loopback:
    every file is answered uploadMode "regular", so its bytes arrive inline (base64) in the NDJSON commit."""

    def __init__(self, refuse: int | None = None):
        self.refuse = refuse  # answer the repo creation with this HTTP status
        self.calls: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.repos: dict[str, dict] = {}  # repo id -> the creation request's payload
        self.branches: list[tuple[str, str]] = []
        self.commits: list[dict] = []  # {repo, revision, header, files: {path: bytes}}
        self.authorization: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                hub.answer(self, "GET", b"")

            def do_POST(self) -> None:
                hub.answer(self, "POST", self._body())

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

        return Handler

    def answer(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        path = unquote(urlsplit(req.path).path)
        self.calls.append((method, path))
        self.authorization.add(req.headers.get("Authorization", ""))
        status, reply = self.route(method, path, body)
        data = json.dumps(reply).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        repo_call = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
        if (method, path) == ("POST", "/api/validate-yaml"):
            return 200, {"errors": [], "warnings": []}
        if (method, path) == ("POST", "/api/repos/create"):
            if self.refuse:
                return self.refuse, {"error": 'You don\'t have the rights to create a model under the namespace "org"'}
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}"
            if repo in self.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}
            self.repos[repo] = payload
            return 200, {"url": f"{self.url}/{repo}", "name": repo, "id": "0" * 24}
        if method == "GET" and (info := re.fullmatch(r"/api/models/([^/]+/[^/]+)", path)):
            repo = info.group(1)
            if repo not in self.repos:
                return 404, {"error": "Repository not found"}
            return 200, {"id": repo, "private": self.private(repo), "sha": "0" * 40}
        if method == "POST" and repo_call and repo_call.group(2) == "branch":
            self.branches.append((repo_call.group(1), repo_call.group(3)))
            return 200, {}
        if method == "POST" and repo_call and repo_call.group(2) == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if method == "POST" and repo_call and repo_call.group(2) == "commit":
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(x["value"] for x in lines if x["key"] == "header")
            files = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
            others = [x["key"] for x in lines if x["key"] not in ("header", "file")]
            repo = repo_call.group(1)
            self.commits.append({"repo": repo, "revision": repo_call.group(3), "header": header, "files": files})
            oid = f"{len(self.commits):040x}"
            if others:
                return 400, {"error": f"the fake hub takes regular files only, got {others}"}
            return 200, {"commitOid": oid, "commitUrl": f"{self.url}/{repo}/commit/{oid}", "success": True}
        self.unknown.append((method, path))
        return 404, {"error": f"the fake hub does not implement {method} {path}"}

    def private(self, repo: str) -> bool:
        payload = self.repos[repo]
        return payload.get("visibility") == "private" or payload.get("private") is True  # huggingface_hub 2 or 1

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def hub_env(tmp_path: Path, **values: str) -> dict:
    """This process's environment without hub settings or proxies (loopback must not go through one), a fresh
    HF_HOME (no saved token), then `values`."""
    env = {k: v for k, v in os.environ.items() if k not in HUB_VARIABLES and not k.lower().endswith("_proxy")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", **values)
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(done) -> str:
    """The CLI failed with exit 2 and one `error:` line, no traceback; that line."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def run(tiny_runs, tmp_path) -> Path:
    """A copy of a tiny trained LoRA run, free to change."""
    return Path(shutil.copytree(tiny_runs["paris"], tmp_path / "paris"))


def test_dry_run_lists_exactly_the_adapter_folder_and_needs_no_token_or_network(run, tmp_path):
    env = hub_env(tmp_path, HF_HUB_OFFLINE="1", HF_TOKEN="", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    done = cli("push", str(run), "--repo", "org/paris-lora", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    adapter = files_of(run / "adapter")
    assert sorted(listed) == sorted(adapter)
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= set(listed)  # the model card too
    assert b"base_model:" in adapter["README.md"]
    assert not any("checkpoint" in name or "step-" in name for name in listed)
    assert f"to {env['HF_ENDPOINT']}/org/paris-lora (branch main)" in done.stdout
    assert "commit message: Upload paris (LoRA adapter) with tunesmith" in done.stdout
    assert "nothing was uploaded" in done.stdout


def test_an_export_folder_is_pushed_as_it_is(run, tmp_path):
    export = Path(shutil.copytree(run / "adapter", tmp_path / "paris-peft"))
    (export / "export.json").write_text(json.dumps({"run": str(run), "format": "peft"}))
    done = cli("push", str(export), "--repo", "org/paris-peft", "--dry-run", env=hub_env(tmp_path))
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert sorted(listed) == sorted(files_of(export)) and "export.json" in listed
    assert "Upload paris (PEFT adapter) with tunesmith" in done.stdout


@pytest.mark.parametrize(
    "where, repo, says",
    [
        ("empty", "org/name", "not a tunesmith run folder (config.yaml) or export folder (export.json)"),
        ("missing", "org/name", "no such folder"),
        ("run", "just-a-name", "--repo must be ORG/NAME"),
        ("run", "org/bad name", "--repo must be ORG/NAME"),
    ],
)
def test_a_wrong_path_or_repo_is_one_line(run, tmp_path, where, repo, says):
    path = {"empty": tmp_path / "empty", "missing": tmp_path / "nowhere", "run": run}[where]
    if where == "empty":
        path.mkdir()
    line = one_error_line(cli("push", str(path), "--repo", repo, "--dry-run", env=hub_env(tmp_path)))
    assert says in line
    if where != "run":
        assert str(path) in line


@pytest.mark.parametrize("planted", ["adapter/training_args.bin", "adapter/sub/optimizer.pt", "adapter/data.jsonl"])
def test_a_pickle_or_data_file_in_the_folder_is_refused_before_anything_is_sent(run, tmp_path, planted):
    (run / planted).parent.mkdir(parents=True, exist_ok=True)
    (run / planted).write_bytes(b"\x80\x04K\x01.")
    with FakeHub() as hub:
        env = hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
        line = one_error_line(cli("push", str(run), "--repo", "org/paris-lora", env=env))
    assert planted.split("/", 1)[1] in line and "nothing was uploaded" in line
    assert ("pickle" if planted.endswith((".bin", ".pt")) else "data file") in line
    assert hub.calls == []


def test_offline_says_so_and_how_to_push_later(run, tmp_path):
    line = one_error_line(cli("push", str(run), "--repo", "org/x", env=hub_env(tmp_path, HF_HUB_OFFLINE="1")))
    assert "HF_HUB_OFFLINE is set" in line and "run the same command" in line


def test_no_token_says_how_to_log_in(run, tmp_path):
    env = hub_env(tmp_path, HF_TOKEN="", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    line = one_error_line(cli("push", str(run), "--repo", "org/x", env=env))
    assert "no Hugging Face token" in line and "hf auth login" in line and "HF_TOKEN" in line


def test_an_unreachable_hub_is_one_line_and_changes_nothing(run, tmp_path):
    before = files_of(run)
    port = closed_port()
    env = hub_env(tmp_path, HF_TOKEN=TOKEN, HF_ENDPOINT=f"http://127.0.0.1:{port}")
    line = one_error_line(cli("push", str(run), "--repo", "org/x", env=env))
    assert f"the hub at http://127.0.0.1:{port} is unreachable" in line and "nothing was uploaded" in line
    assert files_of(run) == before


def test_the_hub_refusing_is_its_own_message_in_one_line(run, tmp_path):
    with FakeHub(refuse=403) as hub:
        done = cli("push", str(run), "--repo", "org/x", env=hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN))
    line = one_error_line(done)
    assert "(HTTP 403)" in line and 'You don\'t have the rights to create a model under the namespace "org"' in line
    assert "the token cannot write to org/x" in line
    assert hub.commits == [] and hub.unknown == []


def test_private_on_an_existing_public_repo_is_refused_not_ignored(run, tmp_path):
    with FakeHub() as hub:
        hub.repos["org/public"] = {"name": "public", "organization": "org"}
        env = hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
        line = one_error_line(cli("push", str(run), "--repo", "org/public", "--private", env=env))
    assert "org/public exists and is public" in line and "nothing was uploaded" in line
    assert hub.commits == [] and hub.unknown == []


def test_push_uploads_the_adapter_folder_byte_for_byte(run, tmp_path):
    with FakeHub() as hub:
        env = hub_env(tmp_path, HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN)
        done = cli("push", str(run), "--repo", "org/paris-lora", "--private", "--revision", "v1", env=env)
    assert done.returncode == 0, (done.stdout, done.stderr, hub.calls)
    assert hub.unknown == []
    assert list(hub.repos) == ["org/paris-lora"] and hub.private("org/paris-lora")
    assert hub.branches == [("org/paris-lora", "v1")]
    assert hub.authorization == {f"Bearer {TOKEN}"}
    [commit] = hub.commits
    assert commit["revision"] == "v1" and commit["header"]["summary"] == "Upload paris (LoRA adapter) with tunesmith"
    assert commit["files"] == files_of(run / "adapter")
    assert "README.md" in commit["files"] and not any(p.endswith((".bin", ".pt")) for p in commit["files"])
    assert f"pushed to {hub.url}/org/paris-lora" in done.stdout
    assert f"commit {1:040x}: {hub.url}/org/paris-lora/commit/{1:040x}" in done.stdout
