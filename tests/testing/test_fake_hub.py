"""The fake hub speaks the protocol the real huggingface_hub client uses (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from vibeml.testing.fake_hub import FakeHub, safetensors_bytes

GOOD = "hf_" + "a" * 34  # the conftest's "good" and "other" tokens
OTHER = "hf_" + "b" * 34
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64}
WEIGHTS = safetensors_bytes({"embed": ("BF16", (128, 64)), "norm": ("F32", (64,))})


def add_tiny(hub: FakeHub, repo: str = "acme/tiny", **options: object) -> None:
    hub.add_model(
        repo,
        {"config.json": CONFIG, "model.safetensors": WEIGHTS, "tokenizer.json": "{}"},
        license="apache-2.0",
        pipeline_tag="text-generation",
        **options,
    )


def test_tokens_match_the_fixture(tokens: dict[str, str]) -> None:
    assert tokens == {"good": GOOD, "other": OTHER}


def test_model_info_siblings_safetensors_and_card(hub: FakeHub) -> None:
    add_tiny(hub)
    info = HfApi(endpoint=hub.url).model_info("acme/tiny", files_metadata=True, token=False)
    assert info.id == "acme/tiny" and info.private is False and info.gated is False
    assert info.safetensors is not None and info.safetensors.parameters == {"BF16": 128 * 64, "F32": 64}
    assert info.safetensors.total == 128 * 64 + 64
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    assert info.pipeline_tag == "text-generation" and info.config == {
        k: CONFIG[k] for k in ("architectures", "model_type")
    }
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    assert sizes == {"config.json": len(json.dumps(CONFIG)), "model.safetensors": len(WEIGHTS), "tokenizer.json": 2}
    lfs = {s.rfilename: s.lfs for s in info.siblings or []}
    weights_lfs = lfs["model.safetensors"]
    assert weights_lfs is not None and weights_lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert lfs["config.json"] is None
    by_rev = HfApi(endpoint=hub.url).model_info("acme/tiny", revision=info.sha, token=False)
    assert by_rev.sha == info.sha


def test_small_files_answer_directly_with_the_hub_headers(hub: FakeHub) -> None:
    add_tiny(hub)
    head = httpx.head(f"{hub.url}/acme/tiny/resolve/main/config.json")
    body = json.dumps(CONFIG).encode()
    assert head.status_code == 200
    assert head.headers["X-Repo-Commit"] == hub.repos[("model", "acme/tiny")].sha
    assert head.headers["ETag"] == '"' + hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest() + '"'
    assert int(head.headers["Content-Length"]) == len(body)
    assert httpx.get(f"{hub.url}/acme/tiny/resolve/main/config.json").content == body


def test_lfs_files_redirect_to_a_signed_cdn_url_without_the_token(hub: FakeHub, tmp_path: Path) -> None:
    add_tiny(hub, allowed_tokens={GOOD})
    head = httpx.head(f"{hub.url}/acme/tiny/resolve/main/model.safetensors")
    assert head.status_code == 302 and head.headers["Location"].startswith(hub.cdn_url)
    assert head.headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    path = hf_hub_download("acme/tiny", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path, token=GOOD)
    assert Path(path).read_bytes() == WEIGHTS
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert cdn and all(r.authorization is None for r in cdn)  # the client never sends the token off the hub
    assert any(r.authorization == f"Bearer {GOOD}" for r in hub.requests if r.server == "hub")
    forged = head.headers["Location"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(forged).status_code == 403


def test_missing_repo_file_and_revision(hub: FakeHub, tmp_path: Path) -> None:
    add_tiny(hub)
    api = HfApi(endpoint=hub.url)
    response = httpx.get(f"{hub.url}/api/models/acme/nothing")
    assert response.status_code == 404 and response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nothing", token=False)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/tiny", "missing.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/tiny", revision="v9", token=False)


@pytest.mark.parametrize(
    ("token", "status", "error"),
    [
        (None, 401, GatedRepoError),
        (OTHER, 403, GatedRepoError),
        (GOOD, 200, None),
    ],
)
def test_gated_files(hub: FakeHub, tmp_path: Path, token: str | None, status: int, error: type | None) -> None:
    add_tiny(hub, gated="manual", allowed_tokens={GOOD})
    info = HfApi(endpoint=hub.url).model_info("acme/tiny", token=token or False)
    assert info.gated == "manual"  # the model page is public; the files are not
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    head = httpx.head(f"{hub.url}/acme/tiny/resolve/main/config.json", headers=headers)
    assert head.status_code == status
    if error is None:
        HfApi(endpoint=hub.url).auth_check("acme/tiny", token=token)
        hf_hub_download("acme/tiny", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=token)
        return
    assert head.headers["X-Error-Code"] == "GatedRepo"
    assert "restricted" in head.headers["X-Error-Message"]
    with pytest.raises(error):
        hf_hub_download("acme/tiny", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=token or False)
    with pytest.raises(error):
        HfApi(endpoint=hub.url).auth_check("acme/tiny", token=token or False)


def test_private_repos_look_missing_without_access(hub: FakeHub) -> None:
    add_tiny(hub, private=True, allowed_tokens={GOOD})
    api = HfApi(endpoint=hub.url)
    no_token = httpx.get(f"{hub.url}/api/models/acme/tiny")
    assert no_token.status_code == 401 and no_token.headers["X-Error-Code"] == "RepoNotFound"
    wrong = httpx.get(f"{hub.url}/api/models/acme/tiny", headers={"Authorization": f"Bearer {OTHER}"})
    assert wrong.status_code == 404
    for token in (False, OTHER):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("acme/tiny", token=token)
    assert api.model_info("acme/tiny", token=GOOD).private is True


def test_unknown_tokens_are_refused_everywhere(hub: FakeHub) -> None:
    add_tiny(hub)
    with pytest.raises(HfHubHTTPError) as info:
        HfApi(endpoint=hub.url).model_info("acme/tiny", token="hf_" + "z" * 34)
    assert info.value.response.status_code == 401
    assert "Invalid credentials in Authorization header" in str(info.value)
    assert HfApi(endpoint=hub.url).whoami(token=GOOD)["name"] == "alice"


def test_renamed_repos_redirect(hub: FakeHub, tmp_path: Path) -> None:
    add_tiny(hub)
    hub.rename("acme/tiny", "acme/tiny-v2")
    response = httpx.get(f"{hub.url}/acme/tiny/resolve/main/config.json")
    assert response.status_code == 307 and response.headers["Location"] == "/acme/tiny-v2/resolve/main/config.json"
    path = hf_hub_download("acme/tiny", "config.json", endpoint=hub.url, cache_dir=tmp_path, token=False)
    assert json.loads(Path(path).read_text()) == CONFIG
    assert HfApi(endpoint=hub.url).model_info("acme/tiny", token=False).id == "acme/tiny-v2"


def test_datasets_info_tree_and_files(hub: FakeHub, tmp_path: Path) -> None:
    rows = "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(3))
    hub.add_dataset("acme/data", {"data/train.jsonl": rows, "README.md": "---\nlicense: mit\n---\n"}, license="mit")
    api = HfApi(endpoint=hub.url)
    info = api.dataset_info("acme/data", files_metadata=True, token=False)
    assert info.card_data is not None and info.card_data.license == "mit"
    assert sorted(s.rfilename for s in info.siblings or []) == ["README.md", "data/train.jsonl"]
    assert sorted(api.list_repo_files("acme/data", repo_type="dataset", token=False)) == [
        "README.md",
        "data/train.jsonl",
    ]
    path = hf_hub_download(
        "acme/data", "data/train.jsonl", repo_type="dataset", endpoint=hub.url, cache_dir=tmp_path, token=False
    )
    assert Path(path).read_text() == rows
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("acme/missing", token=False)
    # a model and a dataset may share a name: they are different repos
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/data", token=False)


@pytest.mark.needs_train
def test_safetensors_helper_writes_a_valid_file(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes({"a": ("F32", (2, 3)), "b": ("BF16", (4,))}, {"format": "pt"}))
    with safe_open(str(path), framework="numpy") as fh:
        assert set(fh.keys()) == {"a", "b"}
        assert fh.get_tensor("a").shape == (2, 3)


def test_requires_a_running_server() -> None:
    hub = FakeHub()
    with pytest.raises(RuntimeError):
        _ = hub.url
