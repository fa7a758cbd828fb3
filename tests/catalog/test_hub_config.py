"""config.json through huggingface_hub, against a fake hub on loopback that speaks the hub's protocol."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from vibeml.catalog.architectures import fetch_hub_config, resolve_architecture
from vibeml.exceptions import ModelNotFoundError
from vibeml.settings import Settings

REPO = "acme/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "intermediate_size": 1024,
    "vocab_size": 4096,
    "tie_word_embeddings": True,
}


def serve_config(server: HTTPServer, repo: str, config: dict[str, object]) -> None:
    """Answer HEAD and GET of /{repo}/resolve/main/config.json the way the hub does."""
    body = json.dumps(config).encode()
    headers = {
        "X-Repo-Commit": COMMIT,
        "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
        "Content-Type": "application/json",
        "Accept-Ranges": "bytes",
    }
    path = f"/{repo}/resolve/main/config.json"
    for method in ("HEAD", "GET"):
        server.expect_request(path, method=method).respond_with_data(body, headers=headers)


def serve_missing(server: HTTPServer, repo: str) -> None:
    for method in ("HEAD", "GET"):
        server.expect_request(f"/{repo}/resolve/main/config.json", method=method).respond_with_data(
            "Repository not found",
            status=404,
            headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
        )


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer, tmp_path: Path) -> dict[str, str]:
    """HF_ENDPOINT at the fake hub, offline mode off (also in the already-imported library)."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", httpserver.url_for("").rstrip("/"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return {"HF_ENDPOINT": httpserver.url_for("").rstrip("/"), "HF_HUB_CACHE": str(tmp_path / "hub-cache")}


def test_fetches_config_from_the_hub_and_caches_it(
    online: dict[str, str], httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_config(httpserver, REPO, CONFIG)
    arch = resolve_architecture(REPO, hub=Settings.from_env().hub)
    assert arch.source == "hub" and arch.hidden_size == 512 and arch.vocab_size == 4096
    assert any(req.path.endswith("config.json") for req, _ in httpserver.log)
    assert list(Path(online["HF_HUB_CACHE"]).glob("models--acme--tiny-llama/snapshots/*/config.json"))

    # Offline afterwards: the cached file is used, the server is not asked again.
    served = len(httpserver.log)
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert Settings.from_env().hub.offline
    assert fetch_hub_config(REPO, hub=Settings.from_env().hub)["hidden_size"] == 512
    assert len(httpserver.log) == served


def test_missing_repo_is_model_not_found(online: dict[str, str], httpserver: HTTPServer) -> None:
    serve_missing(httpserver, "acme/nothing-here")
    with pytest.raises(ModelNotFoundError):
        fetch_hub_config("acme/nothing-here", hub=Settings.from_env().hub)
    with pytest.raises(ModelNotFoundError) as err:
        resolve_architecture("acme/nothing-here", hub=Settings.from_env().hub)
    assert "hub_error" in err.value.context


def test_missing_repo_with_a_known_family_falls_back(online: dict[str, str], httpserver: HTTPServer) -> None:
    serve_missing(httpserver, "acme/Qwen2.5-0.5B-Instruct")
    arch = resolve_architecture("acme/Qwen2.5-0.5B-Instruct", hub=Settings.from_env().hub)
    assert arch.source == "builtin" and arch.name == "Qwen/Qwen2.5-0.5B"


def test_builtin_models_never_touch_the_hub(online: dict[str, str], httpserver: HTTPServer) -> None:
    assert resolve_architecture("Qwen/Qwen2.5-7B-Instruct", hub=Settings.from_env().hub).source == "builtin"
    assert httpserver.log == []


def test_offline_without_cache_is_model_not_found(tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    with pytest.raises(ModelNotFoundError) as err:
        fetch_hub_config(REPO, hub=Settings.from_env(env).hub)
    assert err.value.context["offline"] is True
