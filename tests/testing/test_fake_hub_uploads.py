"""The fake hub's upload endpoints, through huggingface_hub's real calls (create_repo, upload_folder,
create_commit), and what was committed is served back to a fresh download."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibeml.testing.fake_hub import FakeHub

pytestmark = pytest.mark.usefixtures("no_xet")


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)


def test_upload_folder_lands_regular_and_lfs_files_and_they_download_again(
    hub: FakeHub, tokens: dict[str, str], tmp_path: Path
) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    weights = bytes(range(256)) * 40
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# hi\n")
    api = HfApi(endpoint=hub.url, token=tokens["good"])
    url = api.create_repo("alice/tuned", private=True)
    assert url.repo_id == "alice/tuned"
    api.upload_folder(repo_id="alice/tuned", folder_path=str(folder), commit_message="first")
    repo = hub.repos[("model", "alice/tuned")]
    assert repo.private and repo.commits == ["first"]
    assert repo.files["adapter_model.safetensors"] == weights and "adapter_model.safetensors" in repo.lfs
    assert "adapter_config.json" not in repo.lfs
    assert any(r.method == "PUT" and r.server == "cdn" for r in hub.requests)  # the LFS blob went to the CDN

    path = hf_hub_download(
        "alice/tuned", "adapter_model.safetensors", endpoint=hub.url, token=tokens["good"], cache_dir=tmp_path / "c"
    )
    assert Path(path).read_bytes() == weights
    with pytest.raises(Exception, match=r"404|401|Repository Not Found"):  # private: another user cannot read it
        hf_hub_download(
            "alice/tuned", "adapter_config.json", endpoint=hub.url, token=tokens["other"], cache_dir=tmp_path / "c2"
        )

    # the same blob again: no second PUT; an unchanged regular file is skipped by the client
    puts = sum(r.method == "PUT" for r in hub.requests)
    api.upload_folder(repo_id="alice/tuned", folder_path=str(folder), commit_message="again")
    assert sum(r.method == "PUT" for r in hub.requests) == puts


def test_create_repo_conflicts_and_namespaces(hub: FakeHub, tokens: dict[str, str]) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=hub.url, token=tokens["good"])
    api.create_repo("alice/one")
    api.create_repo("alice/one", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("alice/one")
    assert info.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("acme/other")
    assert info.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as info:  # bob may not write to alice's repo
        HfApi(endpoint=hub.url, token=tokens["other"]).upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/one"
        )
    assert info.value.response.status_code in (403, 404)


def test_create_commit_deletes_and_rejects_unuploaded_lfs(hub: FakeHub, tokens: dict[str, str]) -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(endpoint=hub.url, token=tokens["good"])
    api.create_repo("alice/ops")
    api.create_commit(
        "alice/ops",
        [CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("sub/b.txt", b"b")],
        commit_message="add",
    )
    api.create_commit("alice/ops", [CommitOperationDelete("sub/")], commit_message="rm")
    assert set(hub.repos[("model", "alice/ops")].files) == {"a.txt"}
    assert [f.rfilename for f in api.model_info("alice/ops").siblings or []] == ["a.txt"]
