"""Push a run's trained folder (`adapter/`, or `model/` for full fine-tuning) or an export folder to the Hugging
Face hub as it is: safetensors weights, tokenizer, model card (`README.md`).

`plan_push` reads only the local folder (a dry run needs no token or network) and refuses pickles, training data
and checkpoints; `connect` finds the token; `push` creates the repo and uploads with `huggingface_hub`. Each
failure (offline, no token, the hub unreachable, an HTTP error) is one `PushError` line."""

from __future__ import annotations

import importlib
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunesmith.errors import TunesmithError
from tunesmith.runfolder import RunFolder, read_json, run_config

if TYPE_CHECKING:
    from huggingface_hub import HfApi

log = logging.getLogger("tunesmith")

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")
DATA_SUFFIXES = (".jsonl", ".parquet", ".arrow", ".csv")
CHECKPOINT_FILES = ("trainable.safetensors", "train_state.safetensors", "train_state.json")  # training/checkpoint.py
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"  # the hub's rule for a user, organization or repo name
REPO_ID = re.compile(rf"{_NAME}/{_NAME}")
EXPORTED = {"hf": "merged model", "peft": "PEFT adapter", "gguf": "GGUF model"}


class PushError(TunesmithError):
    """A push cannot be made, or the hub refused it."""


OFFLINE = (
    "HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it on a machine online and run the same command "
    "then (--dry-run shows what would be pushed)"
)


@dataclass(frozen=True)
class PushPlan:
    """What `push` uploads and where: the folder's files (path in the repo, bytes), in upload order."""

    folder: Path
    files: list[tuple[str, int]]
    repo: str
    revision: str
    private: bool
    message: str

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def url(self) -> str:
        """The repo's page on the hub `HF_ENDPOINT` names (huggingface.co by default)."""
        from huggingface_hub import constants

        return f"{constants.ENDPOINT}/{self.repo}"


@dataclass(frozen=True)
class Pushed:
    """A finished push: the repo's page and the commit that holds the folder."""

    url: str
    commit: str
    commit_url: str


def size_text(n: int) -> str:
    """Bytes in the hub's decimal units: 912 B, 4.1 kB, 538.2 MB, 1.4 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def plan_push(
    path: str | Path, repo: str, *, revision: str = "main", private: bool = False, message: str | None = None
) -> PushPlan:
    """What pushing `path` (a run folder or an export folder) to `repo` would upload, checked; nothing is sent."""
    if not REPO_ID.fullmatch(repo) or ".." in repo or "--" in repo or repo.endswith(".git"):
        raise PushError(
            f"--repo must be ORG/NAME, e.g. my-org/support-lora (letters, digits, '-', '_', '.'): got '{repo}'"
        )
    if not revision.strip():
        raise PushError("--revision must name a branch, e.g. main")
    folder, what, name = _source(Path(path))
    files = _listing(folder)
    if not files:
        raise PushError("holds no files to push", origin=folder)
    refused = [(rel, why) for rel, _ in files if (why := _refusal(rel))]
    if refused:
        rel, why = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise PushError(f"holds {rel}{more}, {why}: remove it and push again (nothing was uploaded)", origin=folder)
    return PushPlan(folder, files, repo, revision, private, message or f"Upload {name} ({what}) with tunesmith")


def _source(path: Path) -> tuple[Path, str, str]:
    """(the folder to upload, what it holds, the run's name) for a run folder or an export folder."""
    if not path.is_dir():
        raise PushError("no such folder" if not path.exists() else "is not a folder", origin=path)
    run = RunFolder(path)
    if run.config.is_file():
        method = run_config(path).method
        folder = run.deliverable(method)
        marker = "config.json" if method == "full" else "adapter_config.json"
        if not (folder / marker).is_file():
            raise PushError(
                f"the run has no trained {folder.name}/ folder yet: finish it with `tunesmith train` first", origin=path
            )
        what = {"full": "fully fine-tuned model", "lora": "LoRA adapter", "dora": "DoRA adapter"}[method]
        return folder, what, path.resolve().name
    report = path / "export.json"
    if report.is_file():
        try:
            data = read_json(report)
            fmt, name = data.get("format"), Path(str(data.get("run") or path)).resolve().name
        except (OSError, ValueError, AttributeError):  # unreadable or not an object: push it as it is anyway
            fmt, name = None, path.resolve().name
        return path, EXPORTED.get(str(fmt), "export"), name
    raise PushError(
        "not a tunesmith run folder (config.yaml) or export folder (export.json): give the run folder "
        "(its trained adapter/ or model/ is pushed) or a `tunesmith export` folder",
        origin=path,
    )


def _listing(folder: Path) -> list[tuple[str, int]]:
    """The files `upload_folder` sends from `folder`, with their sizes: everything but what huggingface_hub itself
    leaves out (.git, .cache/huggingface), so a dry run lists exactly what a push uploads."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    kept = filter_repo_objects(files, ignore_patterns=DEFAULT_IGNORE_PATTERNS)
    return [(rel, files[rel].stat().st_size) for rel in kept]


def _refusal(rel: str) -> str | None:
    """Why a file must never reach the hub, or None."""
    parts = rel.lower().split("/")
    if parts[-1].endswith(PICKLE_SUFFIXES):
        return "a pickle file (loading one can run any code; the hub gets safetensors only)"
    if parts[-1].endswith(DATA_SUFFIXES):
        return "a data file (training data is not part of the model)"
    if parts[-1] in CHECKPOINT_FILES or any(p == "checkpoints" or re.fullmatch(r"step-\d+", p) for p in parts[:-1]):
        return "a training checkpoint (optimizer state is not part of the model)"
    return None


def connect(token: str | None = None) -> HfApi:
    """A hub client holding `token`, else huggingface_hub's own (HF_TOKEN, `hf auth login`): offline mode and a
    missing token are errors here, before anything is sent."""
    from huggingface_hub import HfApi, get_token, is_offline_mode

    if is_offline_mode():
        raise PushError(OFFLINE)
    try:
        token = token or get_token()
    except Exception as e:  # an OIDC exchange (HF_OIDC_RESOURCE) that failed, an unreadable token file
        raise PushError(f"cannot get the Hugging Face token: {_one_line(e)}") from None
    if not token:
        raise PushError(
            "no Hugging Face token: log in with `hf auth login`, or set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens)"
        )
    return HfApi(token=token)


def push(plan: PushPlan, api: HfApi) -> Pushed:
    """Upload `plan.folder` to `plan.repo` on branch `plan.revision`, the repo and the branch created when missing.
    One commit: `upload_folder` splits only folders of hundreds of files."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint, done = constants.ENDPOINT, "nothing was uploaded"
    try:
        url = api.create_repo(plan.repo, private=True if plan.private else None, exist_ok=True)
        done = "the upload did not finish; running the same command again uploads what is missing"
        if plan.private and not api.repo_info(plan.repo).private:
            raise PushError(
                f"{plan.repo} exists and is public; --private does not change an existing repo: make it private "
                "on the hub first, or push without --private (nothing was uploaded)"
            )
        if plan.revision != constants.DEFAULT_REVISION:
            api.create_branch(plan.repo, branch=plan.revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=plan.repo, folder_path=plan.folder, revision=plan.revision, commit_message=plan.message
        )
    except OfflineModeIsEnabled:  # a ConnectionError: before the others
        raise PushError(OFFLINE) from None
    except HfHubHTTPError as e:
        raise PushError(_refused(e, plan.repo) + f" ({done})") from None
    except _unreachable() as e:
        raise PushError(f"the hub at {endpoint} is unreachable ({_one_line(e) or type(e).__name__}): {done}") from None
    except PushError:
        raise
    except Exception as e:  # huggingface_hub's own checks (README metadata...), hf_xet: one line, never a traceback
        log.debug("push failed", exc_info=True)
        raise PushError(f"the push to {plan.repo} failed: {_one_line(e)} ({done})") from None
    return Pushed(str(url), info.oid, info.commit_url)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _refused(e, repo: str) -> str:
    """The hub's own words for an HTTP error, and what to do about a bad or weak token."""
    code = e.response.status_code
    said = _one_line(e.server_message or str(e).splitlines()[0])
    hint = {
        401: "the token is not valid: log in again with `hf auth login`, or set HF_TOKEN",
        403: f"the token cannot write to {repo}: it needs write access to that user or organization",
    }.get(code)
    return f"the hub refused the push to {repo} (HTTP {code}): {said}" + (f"; {hint}" if hint else "")


def _unreachable() -> tuple[type[BaseException], ...]:
    """Connection failures: the OS's, and the transport errors of huggingface_hub's HTTP client (httpx2 under
    huggingface_hub 2, httpx under 1)."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        with suppress(ImportError):
            kinds.append(importlib.import_module(name).TransportError)
    return tuple(kinds)
