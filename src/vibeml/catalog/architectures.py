"""Model architectures: the shapes the estimator needs, exact parameter counts, and where they come from.

A model resolves (:func:`resolve_architecture`) from, in order: a local directory or ``config.json``;
the built-in table of popular families (exact public configs, no I/O); the hub's ``config.json`` through
``huggingface_hub`` (cached; honours ``HF_ENDPOINT``, ``HF_HUB_CACHE``/``HF_HOME`` and ``HF_HUB_OFFLINE``
as they are when the call is made); and, when the hub cannot be reached, the built-in table matched by
family name (``unsloth/Qwen2.5-7B-Instruct-bnb-4bit`` → Qwen2.5-7B). Parameter counts are computed from
the config the way transformers builds the model (biases, tied embeddings, extra norms, experts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import ConfigurationError, ModelNotFoundError
from vibeml.safe_paths import is_dir, is_file

if TYPE_CHECKING:
    from vibeml.settings import HubSettings

__all__ = [
    "BUILTIN_CONFIGS",
    "LORA_MODULES",
    "ModelArchitecture",
    "architecture_from_config",
    "builtin_architecture",
    "fetch_hub_config",
    "list_builtin_models",
    "load_config_file",
    "resolve_architecture",
]

#: The projection names VibeML's LoRA targets ("all-linear" = all of them) in a Llama-style layer.
LORA_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

ArchitectureSource = Literal["builtin", "local", "hub", "config", "approximate"]


class ModelArchitecture(BaseModel):
    """A decoder-only transformer's shape, enough to count parameters, memory and FLOPs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model_type: str = "llama"
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    gated_mlp: bool = True
    norms_per_layer: int = Field(2, ge=0)
    qk_norm: bool = False
    norm_bias: bool = False
    num_experts: int = Field(0, ge=0, description="Routed experts per MoE layer (0 = dense).")
    num_experts_per_tok: int = Field(0, ge=0)
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int = Field(0, ge=0)
    max_position_embeddings: int | None = None
    source: ArchitectureSource = "config"

    # ------------------------------------------------------------------ derived shapes
    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def expert_intermediate_size(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each LoRA-targetable projection in one layer.

        For MoE models the MLP entries describe one expert; see :meth:`mlp_multiplicity`.
        """
        h, i = self.hidden_size, (self.expert_intermediate_size if self.is_moe else self.intermediate_size)
        shapes = {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i)
        return shapes

    def mlp_multiplicity(self) -> int:
        """How many copies of each MLP projection a layer holds (experts; 1 for dense)."""
        return self.num_experts if self.is_moe else 1

    # ------------------------------------------------------------------ parameter counts
    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Parameters of a separate LM head (0 when tied to the embedding)."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer, exactly as transformers builds it."""
        h = self.hidden_size
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        if self.qkv_bias:
            attn += self.q_dim + 2 * self.kv_dim
        if self.o_bias:
            attn += h
        if self.qk_norm:
            attn += 2 * self.head_dim
        n_mats = 3 if self.gated_mlp else 2

        def mlp(inter: int) -> int:
            p = n_mats * h * inter
            if self.mlp_bias:
                p += (n_mats - 1) * inter + h
            return p

        if self.is_moe:
            ffn = self.num_experts * mlp(self.expert_intermediate_size) + h * self.num_experts
            if self.shared_expert_intermediate_size:
                ffn += mlp(self.shared_expert_intermediate_size) + h  # shared expert + its gate
        else:
            ffn = mlp(self.intermediate_size)
        norms = self.norms_per_layer * h * (2 if self.norm_bias else 1)
        return attn + ffn + norms

    @property
    def param_count(self) -> int:
        """Exact parameter count (embeddings counted once when tied)."""
        final_norm = self.hidden_size * (2 if self.norm_bias else 1)
        return self.embedding_params + self.num_layers * self.layer_params + final_norm + self.lm_head_params

    @property
    def active_param_count(self) -> int:
        """Parameters a token passes through (MoE: only ``num_experts_per_tok`` experts)."""
        if not self.is_moe:
            return self.param_count
        n_mats = 3 if self.gated_mlp else 2
        idle = (self.num_experts - self.num_experts_per_tok) * n_mats * self.hidden_size
        return self.param_count - self.num_layers * idle * self.expert_intermediate_size

    @property
    def compute_params(self) -> int:
        """Parameters that do matmuls per token: active layers plus the LM head (not the lookup)."""
        tied_head = self.vocab_size * self.hidden_size if self.tie_word_embeddings else 0
        return self.active_param_count - self.embedding_params + tied_head

    def lora_params(self, rank: int, targets: tuple[str, ...] | None = None) -> int:
        """Trainable parameters of LoRA adapters of ``rank`` on ``targets`` (None = all linear)."""
        names = self.resolve_targets(targets)
        shapes = self.linear_shapes()
        total = 0
        for name in names:
            d_in, d_out = shapes[name]
            mult = self.mlp_multiplicity() if name in ("gate_proj", "up_proj", "down_proj") else 1
            total += mult * rank * (d_in + d_out)
        return total * self.num_layers

    def resolve_targets(self, targets: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
        """Map user target names ("all-linear", "q_proj", "qkv_proj", "gate_up_proj") onto this layer."""
        shapes = self.linear_shapes()
        if targets is None or targets == "all-linear" or (isinstance(targets, (list, tuple)) and not targets):
            return tuple(shapes)
        if isinstance(targets, str):
            targets = (targets,)
        fused = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
        out: list[str] = []
        for t in targets:
            short = t.rsplit(".", 1)[-1]
            for name in fused.get(short, (short,)):
                if name in shapes and name not in out:
                    out.append(name)
        return tuple(out)

    @property
    def weight_bytes_bf16(self) -> int:
        """Size of the checkpoint in bf16 (what a download costs)."""
        return 2 * self.param_count


# ---------------------------------------------------------------------------------------------- config

_DEFAULT_TIED = ("gemma", "gemma2", "gemma3", "gemma3_text", "smollm3")


def _first(cfg: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return default


def architecture_from_config(
    config: Mapping[str, Any], name: str = "model", source: ArchitectureSource = "config"
) -> ModelArchitecture:
    """Build a :class:`ModelArchitecture` from a transformers ``config.json`` dict.

    Handles nested ``text_config`` (multimodal wrappers), Llama/Mistral/Qwen2/Qwen3/Gemma/Phi-3 and
    Mixtral/Qwen-MoE-style experts.

    Raises:
        ConfigurationError: a field the estimator needs is missing or not a positive integer.
    """
    cfg: Mapping[str, Any] = config
    if isinstance(config.get("text_config"), Mapping) and "hidden_size" not in config:
        cfg = config["text_config"]
    model_type = str(_first(cfg, "model_type", default=config.get("model_type", "llama")))
    try:
        hidden = int(_first(cfg, "hidden_size", "n_embd", "d_model"))
        layers = int(_first(cfg, "num_hidden_layers", "n_layer", "num_layers"))
        heads = int(_first(cfg, "num_attention_heads", "n_head"))
        kv_heads = int(_first(cfg, "num_key_value_heads", "num_kv_heads", default=heads))
        head_dim = int(_first(cfg, "head_dim", default=hidden // heads))
        inter = int(_first(cfg, "intermediate_size", "ffn_dim", "n_inner", default=4 * hidden))
        vocab = int(_first(cfg, "vocab_size"))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"config for {name!r} lacks a field the estimator needs ({exc})",
            {"model": name, "keys": sorted(cfg)},
            "Give a decoder-only causal LM config (hidden_size, num_hidden_layers, num_attention_heads, "
            "intermediate_size, vocab_size).",
        ) from exc
    tied_default = model_type in _DEFAULT_TIED
    tied = bool(_first(cfg, "tie_word_embeddings", default=config.get("tie_word_embeddings", tied_default)))
    experts = int(_first(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    per_tok = int(_first(cfg, "num_experts_per_tok", "top_k_experts", default=2 if experts else 0) or 0)
    shared_i = int(_first(cfg, "shared_expert_intermediate_size", default=0) or 0)
    n_shared = int(_first(cfg, "n_shared_experts", default=0) or 0)
    moe_i = _first(cfg, "moe_intermediate_size")
    if n_shared and not shared_i and moe_i:
        shared_i = n_shared * int(moe_i)
    attention_bias = bool(_first(cfg, "attention_bias", default=False))
    arch = ModelArchitecture(
        name=name,
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tied,
        qkv_bias=attention_bias or model_type in ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"),
        o_bias=attention_bias,
        mlp_bias=bool(_first(cfg, "mlp_bias", default=False)),
        gated_mlp=model_type not in ("gpt2", "gpt_neox", "opt", "falcon", "starcoder2"),
        norms_per_layer=4 if model_type in ("gemma2", "gemma3", "gemma3_text") else 2,
        qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text", "olmo2"),
        norm_bias=model_type in ("gpt2", "gpt_neox", "opt", "falcon", "starcoder2", "phi"),
        num_experts=experts,
        num_experts_per_tok=per_tok,
        moe_intermediate_size=int(moe_i) if moe_i else None,
        shared_expert_intermediate_size=shared_i,
        max_position_embeddings=_first(cfg, "max_position_embeddings", "n_positions"),
        source=source,
    )
    return arch


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``config.json`` (or the one inside a model directory)."""
    p = Path(path)
    if is_dir(p):
        p = p / "config.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"no config.json at {p}", {"path": str(p)}) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{p} is not a readable JSON config: {exc}", {"path": str(p)}) from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{p} does not hold a JSON object", {"path": str(p)})
    return data


# ---------------------------------------------------------------------------------------------- builtin


def _cfg(
    model_type: str,
    h: int,
    layers: int,
    heads: int,
    kv: int,
    inter: int,
    vocab: int,
    tied: bool,
    head_dim: int | None = None,
    ctx: int | None = None,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": h,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": inter,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    if ctx is not None:
        cfg["max_position_embeddings"] = ctx
    return cfg


#: Public ``config.json`` fields of popular families (the fields the estimator reads), keyed by the
#: canonical hub id. Instruct/chat variants share their base model's shape.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-0.5B": _cfg("qwen2", 896, 24, 14, 2, 4864, 151936, True, ctx=32768),
    "Qwen/Qwen2.5-1.5B": _cfg("qwen2", 1536, 28, 12, 2, 8960, 151936, True, ctx=32768),
    "Qwen/Qwen2.5-3B": _cfg("qwen2", 2048, 36, 16, 2, 11008, 151936, True, ctx=32768),
    "Qwen/Qwen2.5-7B": _cfg("qwen2", 3584, 28, 28, 4, 18944, 152064, False, ctx=131072),
    "Qwen/Qwen2.5-14B": _cfg("qwen2", 5120, 48, 40, 8, 13824, 152064, False, ctx=131072),
    "Qwen/Qwen2.5-32B": _cfg("qwen2", 5120, 64, 40, 8, 27648, 152064, False, ctx=131072),
    "Qwen/Qwen2.5-72B": _cfg("qwen2", 8192, 80, 64, 8, 29568, 152064, False, ctx=131072),
    "meta-llama/Llama-3.2-1B": _cfg("llama", 2048, 16, 32, 8, 8192, 128256, True, 64, 131072),
    "meta-llama/Llama-3.2-3B": _cfg("llama", 3072, 28, 24, 8, 8192, 128256, True, 128, 131072),
    "meta-llama/Llama-3.1-8B": _cfg("llama", 4096, 32, 32, 8, 14336, 128256, False, 128, 131072),
    "meta-llama/Llama-3.1-70B": _cfg("llama", 8192, 80, 64, 8, 28672, 128256, False, 128, 131072),
    "mistralai/Mistral-7B-v0.1": _cfg("mistral", 4096, 32, 32, 8, 14336, 32000, False, 128, 32768),
    "mistralai/Mistral-7B-v0.3": _cfg("mistral", 4096, 32, 32, 8, 14336, 32768, False, 128, 32768),
    "HuggingFaceTB/SmolLM2-135M": _cfg("llama", 576, 30, 9, 3, 1536, 49152, True, 64, 8192),
    "HuggingFaceTB/SmolLM2-360M": _cfg("llama", 960, 32, 15, 5, 2560, 49152, True, 64, 8192),
    "HuggingFaceTB/SmolLM2-1.7B": _cfg("llama", 2048, 24, 32, 32, 8192, 49152, True, 64, 8192),
    "google/gemma-2-2b": _cfg("gemma2", 2304, 26, 8, 4, 9216, 256000, True, 256, 8192),
    "google/gemma-2-9b": _cfg("gemma2", 3584, 42, 16, 8, 14336, 256000, True, 256, 8192),
    "microsoft/Phi-3-mini-4k-instruct": _cfg("phi3", 3072, 32, 32, 32, 8192, 32064, False, 96, 4096),
}

_ALIASES: dict[str, str] = {
    "meta-llama/Meta-Llama-3.1-8B": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
    "meta-llama/Meta-Llama-3-8B": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3-70B": "meta-llama/Llama-3.1-70B",
    "microsoft/Phi-3-mini-128k-instruct": "microsoft/Phi-3-mini-4k-instruct",
    "mistralai/Mistral-7B-v0.2": "mistralai/Mistral-7B-v0.3",
}

# Suffixes that name a variant of the same shape (instruction tuning, quantised uploads, formats).
_VARIANT = re.compile(
    r"(-(instruct|it|chat|base|hf|bnb-4bit|unsloth-bnb-4bit|4bit|8bit|awq|gptq|gguf|fp8|bf16|"
    r"int4|int8|dpo|sft|v\d+(\.\d+)*-instruct))+$",
    re.IGNORECASE,
)


def _name_key(model: str) -> str:
    """'unsloth/Qwen2.5-7B-Instruct-bnb-4bit' → 'qwen2.5-7b'."""
    short = model.strip().rstrip("/").rsplit("/", 1)[-1]
    short = re.sub(r"^meta-llama-", "llama-", short, flags=re.IGNORECASE)
    return _VARIANT.sub("", short).lower()


def _builtin_index() -> tuple[dict[str, str], dict[str, str]]:
    by_id: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for hub_id in BUILTIN_CONFIGS:
        by_id[hub_id.lower()] = hub_id
        by_name.setdefault(_name_key(hub_id), hub_id)
    for alias, target in _ALIASES.items():
        by_id[alias.lower()] = target
        by_name.setdefault(_name_key(alias), target)
    # Instruct variants from the same org resolve exactly (e.g. Qwen/Qwen2.5-7B-Instruct).
    for hub_id in BUILTIN_CONFIGS:
        org = hub_id.split("/")[0].lower()
        by_id.setdefault(f"{org}/{_name_key(hub_id)}-instruct", hub_id)
        by_id.setdefault(f"{org}/{_name_key(hub_id)}-it", hub_id)
    return by_id, by_name


_BY_ID, _BY_NAME = _builtin_index()


def builtin_architecture(model: str, *, fuzzy: bool = True) -> ModelArchitecture | None:
    """The built-in architecture for a hub id, or ``None``.

    Args:
        model: Hub id such as "Qwen/Qwen2.5-7B-Instruct" or a short name such as "Qwen2.5-7B".
        fuzzy: Also match by family name ignoring the organisation and variant suffixes.
    """
    key = model.strip().lower()
    hub_id = _BY_ID.get(key)
    if hub_id is None and "/" not in key:
        hub_id = _BY_NAME.get(_name_key(model))
    if hub_id is None and fuzzy:
        hub_id = _BY_NAME.get(_name_key(model))
    if hub_id is None:
        return None
    return architecture_from_config(BUILTIN_CONFIGS[hub_id], name=hub_id, source="builtin")


def list_builtin_models() -> list[str]:
    """Hub ids of the built-in table."""
    return sorted(BUILTIN_CONFIGS)


# ---------------------------------------------------------------------------------------------- hub


def fetch_hub_config(
    repo_id: str,
    *,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | None = None,
    revision: str | None = None,
    timeout: float = 10.0,
    hub: HubSettings | None = None,
) -> dict[str, Any]:
    """Download (or read from the cache) a repo's ``config.json`` through ``huggingface_hub``.

    ``hub`` is the settings' hub section (``HF_ENDPOINT`` unless ``endpoint`` is given, ``HF_HUB_CACHE`` /
    ``HF_HOME`` unless ``cache_dir`` is, ``HF_HUB_OFFLINE``: offline → only the local cache is consulted),
    read when the settings were built rather than when huggingface_hub was imported. Without it the
    library's own defaults apply.

    Raises:
        ModelNotFoundError: the repo or its config.json does not exist, is gated, or (offline) is not cached.
        ConfigurationError: the file is not a JSON object.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from vibeml.settings import HubSettings

    hub = hub or HubSettings()
    offline = hub.offline
    try:
        path = hf_hub_download(
            repo_id=repo_id,
            filename="config.json",
            revision=revision,
            endpoint=endpoint or hub.endpoint,
            cache_dir=cache_dir or hub.cache_dir,
            token=token or None,
            local_files_only=offline,
            etag_timeout=timeout,
        )
    except GatedRepoError as exc:
        raise ModelNotFoundError(
            f"model {repo_id!r} is gated on the hub",
            {"model": repo_id},
            "Accept the licence on the model page, then store a token that has access: "
            "`vibeml config set-credential huggingface token` (or set HF_TOKEN).",
        ) from exc
    except LocalEntryNotFoundError as exc:  # a subclass of EntryNotFoundError: catch it first
        raise ModelNotFoundError(
            f"config.json of {repo_id!r} is not cached and the hub cannot be reached",
            {"model": repo_id, "offline": offline},
            "Connect to the internet (unset HF_HUB_OFFLINE) or give a local model directory.",
        ) from exc
    except (RepositoryNotFoundError, EntryNotFoundError, HFValidationError) as exc:
        raise ModelNotFoundError(f"model {repo_id!r} not found on the hub", {"model": repo_id}) from exc
    return load_config_file(path)


def resolve_architecture(
    model: str,
    *,
    use_hub: bool = True,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | None = None,
    hub: HubSettings | None = None,
    token_provider: Callable[[], str | None] | None = None,
) -> ModelArchitecture:
    """Resolve a model id or path to its architecture.

    ``token_provider`` is asked for a hub token only when the hub is reached (gated or private repos);
    the service passes VibeML's credential store, so local and built-in models never open it. ``hub`` is
    the settings' hub section (see :func:`fetch_hub_config`).

    Order: local directory/``config.json`` → built-in table (exact id) → hub ``config.json`` → built-in
    table by family name (when the hub is unreachable or offline).

    Raises:
        ModelNotFoundError: nothing resolves the model.
    """
    path = Path(model).expanduser()
    if is_dir(path) or (is_file(path) and path.name.endswith(".json")):
        return architecture_from_config(load_config_file(path), name=str(model), source="local")
    exact = builtin_architecture(model, fuzzy=False)
    if exact is not None:
        return exact
    hub_error: Exception | None = None
    if use_hub and re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", model.strip()):
        try:
            if token is None and token_provider is not None:
                token = token_provider()
            cfg = fetch_hub_config(model, endpoint=endpoint, cache_dir=cache_dir, token=token, hub=hub)
            return architecture_from_config(cfg, name=model, source="hub")
        except ModelNotFoundError as exc:
            hub_error = exc
        except Exception as exc:  # network failures of every kind: fall back to the table
            hub_error = exc
    fallback = builtin_architecture(model, fuzzy=True)
    if fallback is not None:
        return fallback
    context: dict[str, Any] = {"model": model, "builtin": list_builtin_models()}
    if hub_error is not None:
        context["hub_error"] = str(hub_error)
    raise ModelNotFoundError(
        f"cannot resolve the architecture of {model!r}",
        context,
        "Give a hub id (online), a local model directory with config.json, or one of the built-in "
        "models listed in the error context.",
    )
