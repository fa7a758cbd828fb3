"""Model checks: does it exist, may we download it, what is it (hub or local); and the seed's memory methods.

:meth:`ModelValidator.validate_model` answers before anything is rented: the hub (through
``huggingface_hub``, any ``endpoint``) or a local directory tells whether the model exists, is gated or
private and whether the token in use may download it, its parameter count and size (safetensors
metadata), architecture (``config.json``) and licence.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture, architecture_from_config, resolve_architecture
from vibeml.catalog.gpus import GPUSpec, list_gpus
from vibeml.catalog.prices import PriceTable, load_price_table
from vibeml.exceptions import ConfigurationError, ModelNotFoundError, ResourceError, VibeMLError
from vibeml.validation.hub import HubAccess, hub_page

if TYPE_CHECKING:
    from vibeml.estimate.memory import MemoryEstimate
    from vibeml.settings import Settings

__all__ = ["ModelInfo", "ModelValidator", "read_safetensors_parameters"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
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
    "I4": 0.5,
    "U4": 0.5,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class ModelInfo(BaseModel):
    """What VibeML knows about a model before training it."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    source: Literal["hub", "local"]
    exists: bool = True
    revision: str | None = Field(None, description="Commit the hub resolved (hub models).")
    private: bool = False
    gated: bool = False
    gating: str | None = Field(None, description="The hub's gating mode: 'auto' or 'manual'.")
    has_access: bool = Field(True, description="Whether the token in use may download the files.")
    token_used: bool = False
    token_source: str | None = None
    architecture: str | None = Field(None, description="e.g. LlamaForCausalLM (config.json).")
    model_type: str | None = None
    parameter_count: int | None = None
    parameters_by_dtype: dict[str, int] = Field(default_factory=dict)
    size_bytes: int | None = Field(None, description="Weight files on disk/hub.")
    size_gb: float | None = None
    license: str | None = None
    pipeline_tag: str | None = None
    weight_files: list[str] = Field(default_factory=list)
    has_tokenizer: bool | None = None
    url: str | None = None
    warnings: list[str] = Field(default_factory=list)


def read_safetensors_parameters(path: str | Path) -> dict[str, int]:
    """Parameters by dtype from a safetensors file's header (reads the header only).

    Raises:
        ValueError: Not a safetensors file.
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > 100 * 2**20:
            raise ValueError(f"{path}: implausible safetensors header size {n}")
        header = json.loads(fh.read(n))
    counts: dict[str, int] = {}
    for name, spec in header.items():
        if name == "__metadata__" or not isinstance(spec, dict):
            continue
        count = 1
        for dim in spec.get("shape", []):
            count *= int(dim)
        counts[str(spec.get("dtype"))] = counts.get(str(spec.get("dtype")), 0) + count
    return counts


def _weight_files(names: list[str]) -> list[str]:
    safetensors = [n for n in names if n.endswith(".safetensors") and "/" not in n.strip("./")]
    if safetensors:
        return sorted(safetensors)
    return sorted(
        n
        for n in names
        if n.endswith(WEIGHT_SUFFIXES)
        and "/" not in n.strip("./")
        and not n.startswith(("optimizer", "training_args", "scheduler", "rng_state"))
    )


def _license_from_readme(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    front = text[3:].split("\n---", 1)[0]
    match = re.search(r"^license:\s*['\"]?([^'\"\n]+)", front, re.M)
    return match.group(1).strip() if match else None


def _size_gb(size: int | None) -> float | None:
    return None if size is None else round(size / 1e9, 3)


#: Defaults the seed's two methods assume for what they do not take as arguments.
DEFAULT_SEQ_LEN = 1024
DEFAULT_LORA_R = 16
#: Headroom a recommendation keeps free on the GPU (fragmentation, longer samples).
RECOMMEND_HEADROOM = 0.10


def _approximate_architecture(model_id: str) -> ModelArchitecture | None:
    """A Llama-shaped stand-in sized from a parameter count in the name ("20b", "my-7B-model")."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", model_id)
    if not match:
        return None
    target = float(match.group(1)) * 1e9
    # Llama-family proportions: h ≈ 128·L·0.8, MLP 3.5·h, vocab 128k, GQA 8.
    best: ModelArchitecture | None = None
    for layers in range(8, 161, 2):
        hidden = max(256, round(layers * 102.4 / 128) * 128)
        heads = hidden // 128
        cfg = {
            "model_type": "llama",
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": max(1, min(8, heads)),
            "intermediate_size": int(hidden * 3.5) // 256 * 256,
            "vocab_size": 128256,
            "tie_word_embeddings": False,
        }
        arch = architecture_from_config(cfg, name=model_id, source="approximate")
        if best is None or abs(arch.param_count - target) < abs(best.param_count - target):
            best = arch
    return best


class ModelValidator:
    """Validates models (exists, access, size, architecture, licence) and sizes their GPU memory.

    Args:
        endpoint: Hub URL (default ``settings.hub.endpoint``, i.e. ``HF_ENDPOINT``, or huggingface.co). A
            string given as the first positional argument is taken as the endpoint (``ModelValidator(url)``).
        token: Hugging Face token (default, with ``settings``: VibeML's credential store, then ``HF_TOKEN``).
        prices: Price table for recommendations (default: the bundled table).
        use_hub: Whether unknown models may be looked up on the hub (through ``huggingface_hub``).
        settings: VibeML's settings: the hub section, the credential store and ``HF_TOKEN`` (without them
            only the arguments and the hub library's own defaults count).
        cache_dir: Hub cache folder for downloaded files (default: the hub's).
    """

    def __init__(
        self,
        prices: PriceTable | str | None = None,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        use_hub: bool = True,
        settings: Settings | None = None,
        cache_dir: str | None = None,
    ) -> None:
        if isinstance(prices, str):  # ModelValidator(endpoint) — the validation API's positional form
            endpoint, prices = prices, None
        self._prices = prices
        self._use_hub = use_hub
        self._settings = settings
        self._endpoint = endpoint
        self._token = token
        self._cache_dir = cache_dir
        self._access: HubAccess | None = None
        self._cache: dict[str, ModelArchitecture] = {}

    @property
    def hub(self) -> HubAccess:
        """Hub settings and token, resolved on first use."""
        if self._access is None:
            self._access = HubAccess.resolve(
                self._endpoint, self._token, cache_dir=self._cache_dir, settings=self._settings
            )
        return self._access

    def architecture(self, model_id: str) -> ModelArchitecture:
        """Resolve ``model_id`` (local dir, built-in, hub, or a size in the name as a last resort).

        Raises:
            ModelNotFoundError: nothing resolves it and its name holds no parameter count.
        """
        if model_id not in self._cache:
            try:
                arch = resolve_architecture(
                    model_id,
                    use_hub=self._use_hub,
                    hub=self._settings.hub if self._settings is not None else None,
                    endpoint=self._endpoint,
                    cache_dir=self._cache_dir,
                    token=self._token,
                    token_provider=lambda: self.hub.token,
                )
            except ModelNotFoundError:
                approx = _approximate_architecture(model_id)
                if approx is None:
                    raise
                arch = approx
            self._cache[model_id] = arch
        return self._cache[model_id]

    def _memory(
        self, model_id: str, batch_size: int, use_quantization: bool, gpu: GPUSpec | None = None
    ) -> MemoryEstimate:
        from vibeml.estimate.memory import TrainingShape, estimate_memory

        shape = TrainingShape(
            method="qlora" if use_quantization else "lora",
            batch_size=batch_size,
            seq_len=DEFAULT_SEQ_LEN,
            gradient_checkpointing=True,
            lora_r=DEFAULT_LORA_R,
        )
        return estimate_memory(self.architecture(model_id), shape, gpu)

    def calculate_gpu_memory_required(
        self,
        model_id: str,
        batch_size: int = 1,
        use_quantization: bool = False,
    ) -> float:
        """GPU memory (GiB, as nvidia-smi shows it) to LoRA-fine-tune ``model_id``.

        Assumes VibeML's trainer (TRL, fused loss), sequences of 1024 tokens, gradient checkpointing, LoRA
        r=16 on all linear layers; ``use_quantization`` means QLoRA (4-bit NF4 base weights).

        Raises:
            ModelNotFoundError: the model cannot be resolved.
        """
        return round(self._memory(model_id, max(1, batch_size), use_quantization).total_gib, 2)

    def recommend_gpu_type(
        self,
        model_id: str,
        batch_size: int = 1,
        use_quantization: bool = False,
    ) -> str:
        """The cheapest GPU (lowest on-demand $/GPU-hour in the price table) that fits with 10 % headroom.

        Per-hour price is the right ranking here because no workload is given; with one, use the
        planner, which ranks by total job cost.

        Raises:
            ResourceError: no single catalogued GPU fits.
        """
        prices = self._prices or load_price_table()
        best: tuple[float, str] | None = None
        largest_need = 0.0
        for gpu in list_gpus():
            mem = self._memory(model_id, max(1, batch_size), use_quantization, gpu)
            largest_need = max(largest_need, mem.required_gib)
            if mem.total_gib > gpu.memory_gib * (1 - RECOMMEND_HEADROOM) or not mem.fits:
                continue
            quote = prices.cheapest(gpu.name, spot=False)
            price = quote.usd_per_gpu_hour if quote else float("inf")
            if best is None or (price, gpu.memory_gib) < (best[0], 0.0):
                best = (price, gpu.name)
        if best is None:
            raise ResourceError(
                f"no single GPU has enough memory to fine-tune {model_id}",
                {"model": model_id, "required_gib": round(largest_need, 1)},
                "Use QLoRA (use_quantization=True), a smaller batch, or several GPUs (see `vibeml plan`).",
            )
        return best[1]

    # ------------------------------------------------------------------------------- validation

    def validate_model(self, model_id: str, *, revision: str | None = None, require_access: bool = True) -> ModelInfo:
        """Check a hub model or a local model directory before training it.

        Args:
            model_id: Hub id (``org/name``) or a local directory saved with ``save_pretrained``.
            revision: Hub branch, tag or commit (default ``main``).
            require_access: Raise when the token in use cannot download the files (gated models); with
                False, return the facts with ``has_access=False`` instead.

        Raises:
            ModelNotFoundError: Missing (or private without access) on the hub, a local path without
                ``config.json`` or weights, or offline mode (``HF_HUB_OFFLINE``).
            CredentialError: Gated without access (with ``require_access``), or an invalid token.
            CloudProviderError: The hub cannot be reached or fails.
        """
        if not isinstance(model_id, str) or not model_id.strip():
            raise ModelNotFoundError("no model given", {"model": str(model_id)})
        path = Path(model_id).expanduser()
        try:
            is_local = path.exists()
        except (OSError, ValueError):
            is_local = False
        if is_local:
            return self._validate_local(model_id, path)
        looks_like_path = model_id.startswith(("/", "./", "../", "~", "\\")) or model_id.count("/") > 1
        if looks_like_path or not _HUB_ID.match(model_id):
            raise ModelNotFoundError(
                f"model not found: {model_id!r} is not an existing directory nor a hub model id",
                {"model": model_id},
                "Check the path, or give a hub id like 'Qwen/Qwen2.5-0.5B'.",
            )
        return self._validate_hub(model_id, revision, require_access)

    def _validate_local(self, model_id: str, path: Path) -> ModelInfo:
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model directory (no config.json)",
                {"model": model_id},
                "Give a folder saved with save_pretrained (config.json + weights), or a hub id.",
            )
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"{path}/config.json is not valid JSON: {exc}", {"model": model_id}) from exc
        if not isinstance(config, dict):
            raise ModelNotFoundError(f"{path}/config.json is not a JSON object", {"model": model_id})
        names = sorted(p.name for p in path.iterdir() if p.is_file())
        weights = _weight_files(names)
        if not weights:
            raise ModelNotFoundError(
                f"{path} holds no model weights (*.safetensors or *.bin)",
                {"model": model_id, "files": names[:20]},
                "Save the model with save_pretrained() (it writes model.safetensors), or give a hub id.",
            )
        params: dict[str, int] = {}
        for name in weights:
            if name.endswith(".safetensors"):
                try:
                    for dtype, count in read_safetensors_parameters(path / name).items():
                        params[dtype] = params.get(dtype, 0) + count
                except (OSError, ValueError) as exc:
                    raise ModelNotFoundError(
                        f"{path / name} is not a readable safetensors file: {exc}", {"model": model_id}
                    ) from exc
        size = sum((path / n).stat().st_size for n in weights)
        info = ModelInfo(
            model_id=model_id,
            source="local",
            weight_files=weights,
            size_bytes=size,
            size_gb=_size_gb(size),
            license=_license_from_readme(path / "README.md"),
            has_tokenizer=any(n in names for n in TOKENIZER_FILES),
        )
        self._describe(info, config, params)
        return info

    def _validate_hub(self, model_id: str, revision: str | None, require_access: bool) -> ModelInfo:
        hub = self.hub
        hub.check_online(model_id, "model")
        api = hub.api()
        try:
            raw = api.model_info(model_id, revision=revision, files_metadata=True, token=hub.hf_token)
        except VibeMLError:
            raise
        except Exception as exc:
            raise hub.translate(exc, model_id, "model") from exc
        gating = raw.gated if isinstance(raw.gated, str) else None
        info = ModelInfo(
            model_id=model_id,
            source="hub",
            revision=raw.sha,
            private=bool(raw.private),
            gated=bool(raw.gated),
            gating=gating,
            token_used=hub.token is not None,
            token_source=hub.token_source,
            pipeline_tag=raw.pipeline_tag,
            url=hub_page(model_id, "model"),
        )
        siblings = {s.rfilename: s for s in (raw.siblings or [])}
        info.weight_files = _weight_files(list(siblings))
        sizes = [siblings[n].size for n in info.weight_files]
        if info.weight_files and all(isinstance(x, int) for x in sizes):
            info.size_bytes = int(sum(x for x in sizes if x is not None))
        info.has_tokenizer = any(n in siblings for n in TOKENIZER_FILES)
        card = raw.card_data
        license_ = getattr(card, "license", None) if card is not None else None
        if license_ is None:
            license_ = next((t.split(":", 1)[1] for t in (raw.tags or []) if t.startswith("license:")), None)
        info.license = license_ if isinstance(license_, str) else (", ".join(license_) if license_ else None)
        if info.gated or info.private:
            info.has_access = self._has_access(api, model_id, require_access)
        params = dict(raw.safetensors.parameters) if raw.safetensors is not None else {}
        config: dict[str, Any] = dict(raw.config or {})
        if info.has_access and "config.json" in siblings:
            try:
                downloaded = json.loads(Path(hub.download(model_id, "config.json", "model", raw.sha)).read_text())
                if isinstance(downloaded, dict):
                    config = {**config, **downloaded}
            except (OSError, ValueError, VibeMLError) as exc:
                info.warnings.append(f"config.json could not be read: {exc}")
        elif not info.has_access:
            info.warnings.append(f"no access to the files yet: accept the licence at {info.url} before training")
        if "config.json" not in siblings:
            info.warnings.append("the repo has no config.json: transformers cannot load it as a model")
        if not info.weight_files:
            info.warnings.append("the repo lists no weight files (*.safetensors or *.bin)")
        self._describe(info, config, params)
        return info

    def _has_access(self, api: Any, model_id: str, require_access: bool) -> bool:
        from huggingface_hub.errors import GatedRepoError

        try:
            api.auth_check(model_id, repo_type="model", token=self.hub.hf_token)
            return True
        except GatedRepoError as exc:
            error = self.hub.translate(exc, model_id, "model")
            if require_access:
                raise error from exc
            return False
        except Exception as exc:
            raise self.hub.translate(exc, model_id, "model") from exc

    @staticmethod
    def _describe(info: ModelInfo, config: Mapping[str, Any], params: Mapping[str, int]) -> None:
        """Fill architecture, parameters and size from config.json and safetensors counts."""
        archs = config.get("architectures")
        info.architecture = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
        info.model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
        if params:
            info.parameters_by_dtype = {str(k): int(v) for k, v in params.items()}
            info.parameter_count = int(sum(params.values()))
        elif config.get("hidden_size"):
            try:
                info.parameter_count = architecture_from_config(
                    dict(config), name=info.model_id, source="config"
                ).param_count
                info.warnings.append("parameter count computed from config.json (no safetensors metadata)")
            except (ConfigurationError, ValueError, KeyError, TypeError):
                pass
        if info.size_bytes is None and info.parameters_by_dtype:
            info.size_bytes = int(sum(_DTYPE_BYTES.get(k, 2) * v for k, v in info.parameters_by_dtype.items()))
        info.size_gb = _size_gb(info.size_bytes)
        if "auto_map" in config:
            info.warnings.append("the model needs custom code (auto_map); VibeML never runs remote code")
        if info.has_tokenizer is False:
            info.warnings.append("no tokenizer files: training needs the model's tokenizer")
        if info.pipeline_tag and info.pipeline_tag not in (
            "text-generation",
            "text2text-generation",
            "image-text-to-text",
        ):
            info.warnings.append(f"pipeline '{info.pipeline_tag}' is not text generation")
        if any(f.endswith((".bin", ".pt", ".pth")) for f in info.weight_files):
            info.warnings.append("weights are pickled (.bin): prefer safetensors")
