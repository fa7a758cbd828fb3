"""ModelValidator.validate_model against the fake hub (real huggingface_hub client) and local directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vibeml.exceptions import CloudProviderError, CredentialError, ModelNotFoundError
from vibeml.settings import Settings
from vibeml.testing.fake_hub import FakeHub, safetensors_bytes
from vibeml.validation import ModelInfo, ModelValidator
from vibeml.validation.model import read_safetensors_parameters

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 256,
    "tie_word_embeddings": False,
}
WEIGHTS = {
    "model-00001-of-00002.safetensors": safetensors_bytes({"embed": ("BF16", (256, 64)), "l0": ("BF16", (64, 64))}),
    "model-00002-of-00002.safetensors": safetensors_bytes({"lm_head": ("BF16", (256, 64)), "norm": ("F32", (64,))}),
}
PARAMS = {"BF16": 256 * 64 * 2 + 64 * 64, "F32": 64}
STORE_HINT = "vibeml config set-credential huggingface token"


def publish(hub: FakeHub, repo: str, **options: object) -> None:
    files: dict[str, object] = {"config.json": CONFIG, "tokenizer.json": "{}", "tokenizer_config.json": "{}", **WEIGHTS}
    hub.add_model(repo, files, pipeline_tag="text-generation", **options)


def test_existing_public_model(hub: FakeHub) -> None:
    publish(hub, "acme/tiny-llama", license="apache-2.0")
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model("acme/tiny-llama")
    assert isinstance(info, ModelInfo)
    assert info.source == "hub" and info.exists and info.has_access and not info.gated and not info.private
    assert info.architecture == "LlamaForCausalLM" and info.model_type == "llama"
    assert info.parameters_by_dtype == PARAMS and info.parameter_count == sum(PARAMS.values())
    assert info.size_bytes == sum(len(v) for v in WEIGHTS.values())
    assert info.weight_files == sorted(WEIGHTS) and info.has_tokenizer is True
    assert info.license == "apache-2.0" and info.pipeline_tag == "text-generation"
    assert info.revision == hub.repos[("model", "acme/tiny-llama")].sha
    assert info.url == "https://huggingface.co/acme/tiny-llama" and info.warnings == []
    assert not info.token_used


def test_hf_endpoint_from_the_environment(hub: FakeHub) -> None:
    publish(hub, "acme/tiny-llama")
    validator = ModelValidator(settings=Settings.from_env())  # HF_ENDPOINT, as the front end reads it
    assert validator.validate_model("acme/tiny-llama").parameter_count == sum(PARAMS.values())
    assert any(r.path.startswith("/api/models/acme/tiny-llama") for r in hub.requests)


def test_missing_model(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model("acme/does-not-exist")
    assert "acme/does-not-exist" in err.value.message and "not found" in err.value.message
    assert "private" in err.value.message  # the hub cannot tell missing from private: the message says so
    assert STORE_HINT in (err.value.recovery_suggestion or "")
    assert err.value.context["status_code"] == 404


def test_gated_model_without_a_token(hub: FakeHub) -> None:
    publish(hub, "meta/gated-llama", gated="manual", license="llama3.1")
    with pytest.raises(CredentialError) as err:
        ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model("meta/gated-llama")
    assert "gated" in err.value.message
    assert err.value.recovery_suggestion == (
        f"Accept the license at https://huggingface.co/meta/gated-llama and store a token: {STORE_HINT}"
    )
    assert err.value.context["status_code"] == 401 and err.value.context["authenticated"] is False


def test_gated_model_with_a_token_without_access(hub: FakeHub, tokens: dict[str, str]) -> None:
    publish(hub, "meta/gated-llama", gated="manual", allowed_tokens={tokens["good"]})
    with pytest.raises(CredentialError) as err:
        ModelValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["other"]).validate_model(
            "meta/gated-llama"
        )
    assert "no access" in err.value.message and err.value.context["status_code"] == 403
    assert "https://huggingface.co/meta/gated-llama" in (err.value.recovery_suggestion or "")
    assert tokens["other"] not in str(err.value.to_dict())  # the token never appears in an error


def test_gated_model_facts_without_access(hub: FakeHub) -> None:
    publish(hub, "meta/gated-llama", gated="auto", license="llama3.1")
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model(
        "meta/gated-llama", require_access=False
    )
    assert info.gated and info.gating == "auto" and info.has_access is False
    assert info.parameter_count == sum(PARAMS.values()) and info.license == "llama3.1"  # public metadata
    assert any("accept the licence" in w for w in info.warnings)
    assert not any(r.path.endswith("config.json") for r in hub.requests)  # files are not touched


def test_gated_model_with_access(hub: FakeHub, tokens: dict[str, str]) -> None:
    publish(hub, "meta/gated-llama", gated="manual", allowed_tokens={tokens["good"]})
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["good"]).validate_model(
        "meta/gated-llama"
    )
    assert info.gated and info.has_access and info.token_used and info.token_source == "argument"
    assert info.architecture == "LlamaForCausalLM"
    assert any(
        r.path.endswith("/resolve/" + info.revision + "/config.json") or r.path.endswith("config.json")
        for r in hub.requests
        if r.authorization == f"Bearer {tokens['good']}"
    )


def test_private_model(hub: FakeHub, tokens: dict[str, str]) -> None:
    publish(hub, "acme/secret", private=True, allowed_tokens={tokens["good"]})
    for token in (None, tokens["other"]):
        with pytest.raises(ModelNotFoundError) as err:
            ModelValidator(settings=Settings.from_env(), endpoint=hub.url, token=token).validate_model("acme/secret")
        assert "private" in err.value.message and STORE_HINT in (err.value.recovery_suggestion or "")
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url, token=tokens["good"]).validate_model(
        "acme/secret"
    )
    assert info.private and info.has_access


def test_invalid_token(hub: FakeHub) -> None:
    publish(hub, "acme/tiny-llama")
    with pytest.raises(CredentialError) as err:
        ModelValidator(settings=Settings.from_env(), endpoint=hub.url, token="hf_" + "x" * 34).validate_model(
            "acme/tiny-llama"
        )
    assert "invalid or expired" in err.value.message
    assert "huggingface.co/settings/tokens" in (err.value.recovery_suggestion or "")


def test_token_from_hf_token_env(hub: FakeHub, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    publish(hub, "acme/secret", private=True, allowed_tokens={tokens["good"]})
    monkeypatch.setenv("HF_TOKEN", tokens["good"])
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model("acme/secret")
    assert info.token_source == "HF_TOKEN" and info.has_access


def test_token_from_the_credential_store(
    hub: FakeHub, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vibeml.config.credentials import CredentialManager

    monkeypatch.setenv("VIBEML_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("VIBEML_CREDENTIAL_BACKEND", "keyfile")
    monkeypatch.setenv("HF_TOKEN", tokens["other"])  # the store wins over the environment
    settings = Settings.from_env()
    CredentialManager.from_settings(settings).store_credential("huggingface", "token", tokens["good"])
    publish(hub, "meta/gated-llama", gated="manual", allowed_tokens={tokens["good"]})
    info = ModelValidator(settings=settings, endpoint=hub.url).validate_model("meta/gated-llama")
    assert info.has_access and info.token_source == "vibeml credential store"


def test_offline_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the settings' switch alone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        ModelValidator(settings=Settings.from_env()).validate_model("acme/tiny-llama")
    assert "HF_HUB_OFFLINE" in err.value.message and err.value.context["offline"] is True
    assert "HF_HUB_OFFLINE" in (err.value.recovery_suggestion or "")


def test_hub_unreachable(hub: FakeHub) -> None:
    url = hub.url
    hub.stop()
    with pytest.raises(CloudProviderError) as err:
        ModelValidator(settings=Settings.from_env(), endpoint=url).validate_model("acme/tiny-llama")
    assert err.value.retryable and url in err.value.message


def test_parameters_from_config_without_safetensors_metadata(hub: FakeHub) -> None:
    hub.add_model("acme/old", {"config.json": CONFIG, "pytorch_model.bin": b"\0" * 64, "tokenizer.json": "{}"})
    info = ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model("acme/old")
    assert info.parameter_count and info.parameter_count > 256 * 64
    assert info.weight_files == ["pytorch_model.bin"]
    assert any("computed from config.json" in w for w in info.warnings)
    assert any("pickled" in w for w in info.warnings)


def test_malformed_ids_are_refused_before_the_hub(hub: FakeHub) -> None:
    for bad in ("", "a/b/c", "../x", "bad id!", "-x/y"):
        with pytest.raises(ModelNotFoundError):
            ModelValidator(settings=Settings.from_env(), endpoint=hub.url).validate_model(bad)
    assert hub.requests == []


# ------------------------------------------------------------------------------------------ local


@pytest.mark.needs_train
def test_local_model_directory(demo_assets_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(demo_assets_dir / "tiny-llama", model)
    (model / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# tiny\n")
    info = ModelValidator().validate_model(str(model))
    assert info.source == "local" and info.architecture == "LlamaForCausalLM" and info.license == "mit"
    assert info.parameter_count == sum(read_safetensors_parameters(model / "model.safetensors").values())
    assert info.parameter_count and 1e6 < info.parameter_count < 2e7
    assert info.size_bytes == (model / "model.safetensors").stat().st_size and info.has_tokenizer


def test_local_directory_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        ModelValidator().validate_model(str(empty))
    (empty / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(ModelNotFoundError, match="no model weights") as err:
        ModelValidator().validate_model(str(empty))
    assert "save_pretrained" in (err.value.recovery_suggestion or "")
    (empty / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelNotFoundError, match="safetensors"):
        ModelValidator().validate_model(str(empty))
    with pytest.raises(ModelNotFoundError):
        ModelValidator().validate_model(str(tmp_path / "missing" / "dir"))
