"""A fake Hugging Face hub over real HTTP on 127.0.0.1, for tests of code that uses ``huggingface_hub``.

It speaks what the real client (``huggingface_hub`` 1.x/2.x) sends and reads:

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}`` (``?blobs=true`` adds sizes and LFS
  data to ``siblings``); ``GET /api/datasets/...`` likewise; ``GET /api/{type}s/{repo}/auth-check``;
  ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]``; ``GET /api/whoami-v2``.
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` and ``/datasets/{repo}/resolve/{rev}/{file}``: small files
  answer 200 with ``ETag`` (git blob id), ``X-Repo-Commit`` and ``Content-Length``; LFS files (weights,
  parquet) answer 302 to a signed URL on a second server (the "CDN", another origin, so the client drops
  its ``Authorization`` header) with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``; a renamed repo
  answers 307 with a relative ``Location`` to its new name.
- Uploads, as ``HfApi.create_repo`` / ``create_commit`` / ``upload_folder`` send them (the LFS path; set
  ``HF_HUB_DISABLE_XET`` so the client does not take the Xet path, which this hub does not speak):
  ``POST /api/repos/create`` (``{name, organization, type, visibility}``; 409 when it exists, 403 outside the
  token's namespace); ``POST /api/validate-yaml``; ``POST /api/{type}s/{repo}/preupload/{rev}`` (each file's
  ``uploadMode`` ``lfs``/``regular`` and the ``oid`` of the file already there); ``POST
  /{repo}.git/info/lfs/objects/batch`` (``basic`` transfer: a signed ``PUT`` URL on the CDN and a ``verify``
  URL, no actions for a blob already stored); ``PUT`` on the CDN (the body must hash to the oid); ``POST
  .../objects/verify``; ``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson: ``header``, ``file`` (base64),
  ``lfsFile`` (an uploaded oid), ``deletedFile``, ``deletedFolder``). Writes need the token of the repo's
  owner (the user who created it); what was committed is served back by the routes above.
- Errors as the hub sends them (status, ``X-Error-Code``, ``X-Error-Message``, JSON ``{"error": ...}``):
  missing repo 404 ``RepoNotFound``; private repo without access 401 (no token) or 404 (a token without
  access) ``RepoNotFound``; gated files 401 (no token) / 403 (a token without access) ``GatedRepo``;
  missing file 404 ``EntryNotFound``; missing revision 404 ``RevisionNotFound``; an unknown token 401
  ``Invalid credentials in Authorization header``.

Usage::

    with FakeHub() as hub:
        hub.add_model("acme/tiny", {"config.json": {...}, "model.safetensors": safetensors_bytes({...})})
        HfApi(endpoint=hub.url).model_info("acme/tiny")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "FakeRepo", "HubRequest", "safetensors_bytes"]

RepoType = Literal["model", "dataset"]
Gating = Literal[False, "auto", "manual"]

#: File suffixes stored in LFS (served through the CDN redirect), as on the hub.
LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".gguf", ".pt", ".pth", ".h5", ".msgpack", ".arrow", ".zip")
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def safetensors_bytes(
    tensors: Mapping[str, tuple[str, tuple[int, ...]]], metadata: Mapping[str, str] | None = None
) -> bytes:
    """A valid safetensors file of zeros: ``{name: (dtype, shape)}`` (dtype like ``"BF16"``)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = _DTYPE_BYTES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def _safetensors_counts(data: bytes) -> dict[str, int]:
    """Parameters by dtype from a safetensors header (what the hub shows under ``safetensors``)."""
    if len(data) < 8:
        return {}
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        return {}
    counts: dict[str, int] = {}
    for name, spec in header.items():
        if name == "__metadata__" or not isinstance(spec, dict):
            continue
        count = 1
        for dim in spec.get("shape", []):
            count *= int(dim)
        counts[spec["dtype"]] = counts.get(spec["dtype"], 0) + count
    return counts


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    """One repository: its files and who may read them."""

    repo_id: str
    repo_type: RepoType
    files: dict[str, bytes]
    private: bool = False
    gated: Gating = False
    card_data: dict[str, Any] = field(default_factory=dict)
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: list[str] = field(default_factory=list)
    safetensors: dict[str, int] | None = None  # parameters by dtype; None = read from the .safetensors files
    allowed_tokens: set[str] = field(default_factory=set)
    lfs: set[str] = field(default_factory=set)
    branches: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # the user who created it through the API (who may write to it)
    commits: list[str] = field(default_factory=list)  # commit summaries, oldest first

    @property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + _git_blob_id(self.files[name]).encode())
        return digest.hexdigest()

    def commit_for(self, revision: str) -> str | None:
        """The commit a branch name or commit id points at (None: no such revision)."""
        if revision in ("main", self.sha):
            return self.sha
        return self.branches.get(revision)

    def parameters(self) -> dict[str, int]:
        if self.safetensors is not None:
            return dict(self.safetensors)
        total: dict[str, int] = {}
        for name, data in self.files.items():
            if name.endswith(".safetensors"):
                for dtype, count in _safetensors_counts(data).items():
                    total[dtype] = total.get(dtype, 0) + count
        return total

    def config(self) -> dict[str, Any] | None:
        raw = self.files.get("config.json")
        if raw is None:
            return None
        try:
            cfg = json.loads(raw)
        except ValueError:
            return None
        keep = ("architectures", "model_type", "tokenizer_config")
        return {k: cfg[k] for k in keep if k in cfg} if isinstance(cfg, dict) else None


@dataclass(frozen=True)
class HubRequest:
    """One request the hub (or its CDN) received."""

    method: str
    path: str
    authorization: str | None
    server: Literal["hub", "cdn"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeHub:
    """The fake hub: a hub server and a CDN server on loopback (use as a context manager).

    Args:
        tokens: Valid user tokens → user names (an unknown Bearer token gets the hub's 401).
        host: Interface to bind (loopback only).
    """

    def __init__(self, tokens: Mapping[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.repos: dict[tuple[RepoType, str], FakeRepo] = {}
        self.renamed: dict[tuple[RepoType, str], str] = {}
        self.tokens: dict[str, str] = dict(tokens or {})
        self.requests: list[HubRequest] = []
        self._host = host
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._hub: _Server | None = None
        self._cdn: _Server | None = None
        self._threads: list[threading.Thread] = []
        self.uploaded: dict[str, bytes] = {}  # LFS blobs PUT on the CDN, by sha256

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> FakeHub:
        hub_handler = type("HubHandler", (_Handler,), {"hub": self, "role": "hub"})
        cdn_handler = type("CdnHandler", (_Handler,), {"hub": self, "role": "cdn"})
        self._hub = _Server((self._host, 0), hub_handler)
        self._cdn = _Server((self._host, 0), cdn_handler)
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._hub = self._cdn = None
        self._threads.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The hub's base URL (give it as ``endpoint=`` / ``HF_ENDPOINT``)."""
        if self._hub is None:
            raise RuntimeError("the fake hub is not running (use it as a context manager)")
        return f"http://{self._host}:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        if self._cdn is None:
            raise RuntimeError("the fake hub is not running")
        return f"http://{self._host}:{self._cdn.server_address[1]}"

    # ------------------------------------------------------------------------------------- content

    def add_token(self, token: str, user: str = "alice") -> None:
        self.tokens[token] = user

    def add_model(
        self, repo_id: str, files: Mapping[str, bytes | str | dict[str, Any] | list[Any]] | None = None, **options: Any
    ) -> FakeRepo:
        """Add (or replace) a model repo. ``options`` are :class:`FakeRepo` fields (``gated``, ``private``,
        ``card_data``, ``pipeline_tag``, ``safetensors``, ``allowed_tokens``, ...); ``license=`` is a
        shortcut for ``card_data["license"]``."""
        return self._add("model", repo_id, files, options)

    def add_dataset(
        self, repo_id: str, files: Mapping[str, bytes | str | dict[str, Any] | list[Any]] | None = None, **options: Any
    ) -> FakeRepo:
        """Add (or replace) a dataset repo (same options as :meth:`add_model`)."""
        return self._add("dataset", repo_id, files, options)

    def grant(self, repo_id: str, token: str, repo_type: RepoType = "model") -> None:
        """Give ``token`` access to a gated or private repo."""
        self.repos[(repo_type, repo_id)].allowed_tokens.add(token)

    def rename(self, old: str, new: str, repo_type: RepoType = "model") -> None:
        """Move a repo: requests for ``old`` are redirected to ``new`` (307), as the hub does."""
        repo = self.repos.pop((repo_type, old))
        repo.repo_id = new
        self.repos[(repo_type, new)] = repo
        self.renamed[(repo_type, old)] = new

    def _add(
        self, repo_type: RepoType, repo_id: str, files: Mapping[str, Any] | None, options: dict[str, Any]
    ) -> FakeRepo:
        encoded: dict[str, bytes] = {}
        for name, value in (files or {}).items():
            if isinstance(value, bytes):
                encoded[name] = value
            elif isinstance(value, str):
                encoded[name] = value.encode("utf-8")
            else:
                encoded[name] = json.dumps(value).encode("utf-8")
        card = dict(options.pop("card_data", {}) or {})
        if "license" in options:
            card["license"] = options.pop("license")
        repo = FakeRepo(repo_id=repo_id, repo_type=repo_type, files=encoded, card_data=card, **options)
        repo.lfs |= {n for n in encoded if n.lower().endswith(LFS_SUFFIXES)}
        with self._lock:
            self.repos[(repo_type, repo_id)] = repo
        return repo

    def signature(self, oid: str) -> str:
        return hmac.new(self._secret, oid.encode(), hashlib.sha256).hexdigest()

    def blob(self, oid: str) -> bytes | None:
        if oid in self.uploaded:
            return self.uploaded[oid]
        for repo in list(self.repos.values()):
            for data in repo.files.values():
                if hashlib.sha256(data).hexdigest() == oid:
                    return data
        return None


# ------------------------------------------------------------------------------------------ protocol

_API = re.compile(r"^/api/(models|datasets)/(.+?)(?:/(revision|tree|auth-check)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets)/)?(.+?)/resolve/([^/]+)/(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    role: Literal["hub", "cdn"]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read hub.requests instead
        return

    # --------------------------------------------------------------------------------- plumbing

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "content-type" not in sent:
            self.send_header("Content-Type", content_type)
        if "content-length" not in sent:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None) -> None:
        extra = {"X-Error-Message": message, **(headers or {})}
        if code:
            extra["X-Error-Code"] = code
        self._json(status, {"error": message}, extra)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _record(self) -> None:
        with self.hub._lock:
            self.hub.requests.append(HubRequest(self.command, self.path, self.headers.get("Authorization"), self.role))

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _body(self) -> bytes:
        """The request body (Content-Length or chunked, as httpx sends a file object)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        try:
            return json.loads(self._body() or b"null")
        except ValueError:
            return None

    def _dispatch(self) -> None:
        self._record()
        try:
            if self.role == "cdn":
                self._cdn()
            else:
                self._route()
        except (BrokenPipeError, ConnectionResetError):  # the client went away: nothing to answer
            return

    # ----------------------------------------------------------------------------------- access

    def _check_token(self) -> bool:
        """False (and the hub's 401 sent) when an unknown token is presented."""
        token = self._token()
        if token is not None and token not in self.hub.tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
            return False
        return True

    def _repo(self, repo_type: RepoType, repo_id: str, *, files: bool, api_path: str = "") -> FakeRepo | None:
        """The repo if this request may see it; otherwise the hub's error is sent and None returned."""
        repo_id = unquote(repo_id)
        moved = self.hub.renamed.get((repo_type, repo_id))
        if moved is not None:  # a relative redirect to the new name, as the hub answers for renamed repos
            if api_path:
                target = self.path.replace(f"/api/{repo_type}s/{repo_id}", f"/api/{repo_type}s/{moved}", 1)
            else:
                target = self.path.replace(f"/{repo_id}/resolve/", f"/{moved}/resolve/", 1)
            self._send(307, b"", {"Location": target})
            return None
        repo = self.hub.repos.get((repo_type, repo_id))
        token = self._token()
        allowed = token is not None and token in repo.allowed_tokens if repo else False
        if repo is None or (repo.private and not allowed):
            status = 401 if token is None and repo is not None else 404
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        if files and repo.gated and not allowed:
            kind = "model" if repo_type == "model" else "dataset"
            url = f"https://huggingface.co/{'' if repo_type == 'model' else 'datasets/'}{repo_id}"
            if token is None:
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to {kind} {repo_id} is restricted. You must have access to "
                    "it and be authenticated to access it. Please log in.",
                )
            else:
                self._error(
                    403,
                    "GatedRepo",
                    f"Access to {kind} {repo_id} is restricted and you are not in the "
                    f"authorized list. Visit {url} to ask for access.",
                )
            return None
        return repo

    # ----------------------------------------------------------------------------------- routes

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if not self._check_token():
            return
        if path == "/api/whoami-v2":
            token = self._token()
            if token is None:
                self._error(401, None, "Invalid username or password.")
            else:
                self._json(200, {"type": "user", "name": self.hub.tokens[token], "auth": {"type": "access_token"}})
            return
        if self.command in ("POST", "PUT"):
            self._write_route(path)
            return
        match = _API.match(path)
        if match and self.command == "GET":
            repo_type: RepoType = "model" if match.group(1) == "models" else "dataset"
            self._api(repo_type, match.group(2), match.group(3), match.group(4), query)
            return
        match = _RESOLVE.match(path)
        if match:
            repo_type = "dataset" if match.group(1) else "model"
            self._resolve(repo_type, match.group(2), unquote(match.group(3)), unquote(match.group(4)))
            return
        self._error(404, None, "Sorry, we can't find the page you are looking for.")

    def _api(
        self, repo_type: RepoType, repo_id: str, kind: str | None, rest: str | None, query: dict[str, list[str]]
    ) -> None:
        if not _NAME.match(unquote(repo_id)):
            self._error(400, None, f"Invalid repo name: {unquote(repo_id)}")
            return
        repo = self._repo(repo_type, repo_id, files=kind in ("auth-check", "tree"), api_path="api")
        if repo is None:
            return
        if kind == "auth-check":
            self._json(200, {})
            return
        revision = "main"
        if kind == "revision" and rest:
            revision = unquote(rest)
        elif kind == "tree":
            revision, _, prefix = (unquote(rest or "main")).partition("/")
            if repo.commit_for(revision) is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return
            entries = [self._tree_entry(repo, n) for n in sorted(repo.files) if n.startswith(prefix)]
            self._json(200, entries)
            return
        sha = repo.commit_for(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        self._json(200, self._info(repo, sha, blobs=query.get("blobs", ["false"])[0].lower() == "true"))

    def _tree_entry(self, repo: FakeRepo, name: str) -> dict[str, Any]:
        data = repo.files[name]
        entry: dict[str, Any] = {"type": "file", "oid": _git_blob_id(data), "size": len(data), "path": name}
        if name in repo.lfs:
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _info(self, repo: FakeRepo, sha: str, *, blobs: bool) -> dict[str, Any]:
        siblings = []
        for name in sorted(repo.files):
            item: dict[str, Any] = {"rfilename": name}
            if blobs:
                data = repo.files[name]
                item.update(size=len(data), blobId=_git_blob_id(data))
                if name in repo.lfs:
                    item["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(item)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": author,
            "sha": sha,
            "lastModified": "2026-11-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(repo.tags),
            "cardData": dict(repo.card_data),
            "siblings": siblings,
        }
        if repo.repo_type == "model":
            params = repo.parameters()
            info.update(pipeline_tag=repo.pipeline_tag, library_name=repo.library_name, modelId=repo.repo_id)
            if params:
                info["safetensors"] = {"parameters": params, "total": sum(params.values())}
            cfg = repo.config()
            if cfg is not None:
                info["config"] = cfg
        return info

    def _resolve(self, repo_type: RepoType, repo_id: str, revision: str, filename: str) -> None:
        if self.command not in ("GET", "HEAD"):
            self._error(405, None, "Method not allowed")
            return
        repo = self._repo(repo_type, repo_id, files=True)
        if repo is None:
            return
        sha = repo.commit_for(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        data = repo.files.get(filename)
        if data is None:
            self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": sha})
            return
        base = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if filename in repo.lfs:
            oid = hashlib.sha256(data).hexdigest()
            location = f"{self.hub.cdn_url}/lfs/{oid}?X-Amz-Signature={self.hub.signature(oid)}&name={quote(filename)}"
            self._send(
                302,
                b"",
                {
                    **base,
                    "Location": location,
                    "ETag": f'"{_git_blob_id(data)}"',
                    "X-Linked-Etag": f'"{oid}"',
                    "X-Linked-Size": str(len(data)),
                },
            )
            return
        self._send(
            200,
            data,
            {**base, "ETag": f'"{_git_blob_id(data)}"', "Content-Length": str(len(data))},
            content_type="application/octet-stream",
        )

    def _cdn(self) -> None:
        parts = urlsplit(self.path)
        if self.command == "PUT":
            self._cdn_upload(parts.path, parse_qs(parts.query))
            return
        match = re.match(r"^/lfs/([0-9a-f]{64})$", parts.path)
        signature = parse_qs(parts.query).get("X-Amz-Signature", [""])[0]
        if match is None or not hmac.compare_digest(signature, self.hub.signature(match.group(1))):
            self._send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
            return
        data = self.hub.blob(match.group(1))
        if data is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
            return
        self._send(200, data, {"ETag": f'"{match.group(1)}"'}, content_type="application/octet-stream")

    # ----------------------------------------------------------------------------------- uploads

    def _writer(self, repo_type: RepoType, repo_id: str) -> FakeRepo | None:
        """The repo if this request's token may write to it (its owner's); otherwise the hub's error is sent."""
        repo_id = unquote(repo_id)
        token = self._token()
        repo = self.hub.repos.get((repo_type, repo_id))
        user = self.hub.tokens.get(token) if token is not None else None
        if repo is None or (repo.private and user != repo.owner and token not in repo.allowed_tokens):
            self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")
            return None
        if user is None:
            self._error(401, None, "Invalid username or password.")
            return None
        if user != repo.owner:
            self._error(403, None, f"You don't have the rights to write to {repo_type} {repo_id}")
            return None
        return repo

    def _write_route(self, path: str) -> None:
        if path == "/api/repos/create" and self.command == "POST":
            self._create_repo(self._json_body())
            return
        if path == "/api/validate-yaml" and self.command == "POST":
            self._validate_yaml(self._json_body())
            return
        match = re.match(r"^/api/(models|datasets)/(.+?)/(preupload|commit)/([^/]+)$", path)
        if match and self.command == "POST":
            repo_type: RepoType = "model" if match.group(1) == "models" else "dataset"
            repo = self._writer(repo_type, match.group(2))
            if repo is None:
                return
            if unquote(match.group(4)) != "main":
                self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(match.group(4))}")
                return
            if match.group(3) == "preupload":
                self._preupload(repo, self._json_body())
            else:
                self._commit(repo, self._body())
            return
        match = re.match(r"^/(?:(datasets)/)?(.+?)\.git/info/lfs/objects/(batch|verify)$", path)
        if match and self.command == "POST":
            repo = self._writer("dataset" if match.group(1) else "model", match.group(2))
            if repo is None:
                return
            if match.group(3) == "batch":
                self._lfs_batch(path.rsplit("/", 1)[0], self._json_body())
            else:
                self._lfs_verify(self._json_body())
            return
        self._error(404, None, "Sorry, we can't find the page you are looking for.")

    def _create_repo(self, body: Any) -> None:
        token = self._token()
        user = self.hub.tokens.get(token) if token is not None else None
        if user is None:
            self._error(401, None, "Invalid username or password.")
            return
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            self._error(400, None, "name is required")
            return
        namespace = body.get("organization") or user
        repo_id = f"{namespace}/{body['name']}"
        kind: RepoType = "dataset" if body.get("type") == "dataset" else "model"
        if body.get("type") not in (None, "model", "dataset") or not _NAME.match(repo_id):
            self._error(400, None, f"Invalid repo name or type: {repo_id} ({kind})")
            return
        if namespace != user:
            self._error(403, None, f"You don't have the rights to create a {kind} under the namespace {namespace!r}")
            return
        url = f"{self.hub.url}/{'' if kind == 'model' else 'datasets/'}{repo_id}"
        if (kind, repo_id) in self.hub.repos:
            self._json(409, {"error": f"You already created this {kind} repo", "url": url})
            return
        repo = FakeRepo(repo_id=repo_id, repo_type=kind, files={}, owner=user)
        repo.private = body.get("visibility") == "private" or body.get("private") is True
        repo.allowed_tokens.add(token or "")
        with self.hub._lock:
            self.hub.repos[(kind, repo_id)] = repo
        self._json(200, {"url": url, "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()[:24]})

    def _validate_yaml(self, body: Any) -> None:
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str):
            self._json(400, {"errors": [{"message": "content is required"}], "warnings": []})
            return
        if content.startswith("---") and "\n---" not in content[3:]:
            self._json(400, {"errors": [{"message": "the metadata block is not closed"}], "warnings": []})
            return
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: FakeRepo, body: Any) -> None:
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            self._error(400, None, "files is required")
            return
        answer = []
        for item in files:
            path, size = item.get("path"), item.get("size")
            sample = base64.b64decode(item.get("sample") or "")
            lfs = path.lower().endswith(LFS_SUFFIXES) or int(size or 0) >= 10 * 2**20 or b"\0" in sample
            existing = repo.files.get(path)
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else _git_blob_id(existing)
            answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": answer, "commitOid": repo.sha})

    def _lfs_batch(self, base: str, body: Any) -> None:
        if not isinstance(body, dict) or body.get("operation") != "upload":
            self._error(400, None, "only uploads are supported")
            return
        objects = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid")), int(obj.get("size") or 0)
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if self.hub.blob(oid) is None:
                sig = self.hub.signature("upload:" + oid)
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.cdn_url}/lfs-upload/{oid}?size={size}&X-Amz-Signature={sig}"},
                    "verify": {"href": f"{self.hub.url}{base}/verify", "header": {}},
                }
            objects.append(entry)
        body_bytes = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._send(200, body_bytes, content_type="application/vnd.git-lfs+json")

    def _lfs_verify(self, body: Any) -> None:
        oid = body.get("oid") if isinstance(body, dict) else None
        data = self.hub.uploaded.get(str(oid))
        if data is None or len(data) != body.get("size"):
            self._error(404, None, f"object {oid} was not uploaded")
            return
        self._json(200, {})

    def _cdn_upload(self, path: str, query: dict[str, list[str]]) -> None:
        match = re.match(r"^/lfs-upload/([0-9a-f]{64})$", path)
        signature = query.get("X-Amz-Signature", [""])[0]
        if match is None or not hmac.compare_digest(signature, self.hub.signature("upload:" + match.group(1))):
            self._send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
            return
        data = self._body()
        if hashlib.sha256(data).hexdigest() != match.group(1):
            self._send(400, b"<Error><Code>BadDigest</Code></Error>", content_type="application/xml")
            return
        with self.hub._lock:
            self.hub.uploaded[match.group(1)] = data
        self._send(200, b"", {"ETag": f'"{match.group(1)}"'})

    def _commit(self, repo: FakeRepo, body: bytes) -> None:
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError:
            self._error(400, None, "the commit payload is not ndjson")
            return
        if not lines or lines[0].get("key") != "header":
            self._error(400, None, "the commit payload must start with a header")
            return
        files = dict(repo.files)
        lfs = set(repo.lfs)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                self._error(400, None, f"invalid path in commit: {path!r}")
                return
            if key == "file":
                files[path] = base64.b64decode(value.get("content") or "")
                lfs.discard(path)
            elif key == "lfsFile":
                data = self.hub.blob(str(value.get("oid")))
                if data is None:
                    self._error(422, None, f"LFS object {value.get('oid')} for {path} was not uploaded")
                    return
                files[path] = data
                lfs.add(path)
            elif key == "deletedFile":
                files.pop(path, None)
                lfs.discard(path)
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                for name in [n for n in files if n.startswith(prefix)]:
                    files.pop(name)
                    lfs.discard(name)
            else:
                self._error(400, None, f"unknown commit operation {key!r}")
                return
        with self.hub._lock:
            repo.files, repo.lfs = files, lfs
            repo.commits.append(str(lines[0].get("value", {}).get("summary", "")))
        sha = repo.sha
        prefix = "" if repo.repo_type == "model" else "datasets/"
        self._json(
            200, {"success": True, "commitOid": sha, "commitUrl": f"{self.hub.url}/{prefix}{repo.repo_id}/commit/{sha}"}
        )
