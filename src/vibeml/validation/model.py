"""The seed's model checks, backed by the catalogue and the memory model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vibeml.catalog.architectures import ModelArchitecture, architecture_from_config, resolve_architecture
from vibeml.catalog.gpus import GPUSpec, list_gpus
from vibeml.catalog.prices import PriceTable, load_price_table
from vibeml.exceptions import ModelNotFoundError, ResourceError

if TYPE_CHECKING:
    from vibeml.estimate.memory import MemoryEstimate

__all__ = ["ModelValidator"]

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
    """Answers "how much GPU memory does this model need" and "which GPU should I use".

    Args:
        prices: Price table for recommendations (default: the bundled table).
        use_hub: Whether unknown models may be looked up on the hub (through ``huggingface_hub``).
        env: Environment for hub settings (default ``os.environ``).
    """

    def __init__(
        self,
        prices: PriceTable | None = None,
        *,
        use_hub: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._prices = prices
        self._use_hub = use_hub
        self._env = env
        self._cache: dict[str, ModelArchitecture] = {}

    def architecture(self, model_id: str) -> ModelArchitecture:
        """Resolve ``model_id`` (local dir, built-in, hub, or a size in the name as a last resort).

        Raises:
            ModelNotFoundError: nothing resolves it and its name holds no parameter count.
        """
        if model_id not in self._cache:
            try:
                arch = resolve_architecture(model_id, use_hub=self._use_hub, env=self._env)
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
