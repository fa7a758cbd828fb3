"""GPU memory of a fine-tuning step: what PyTorch allocates at the peak, and what nvidia-smi shows.

The model is bottom-up (docs/estimator.md has the derivation): the bytes autograd saves per token per
layer for a Llama-style decoder (fp32 RMSNorm inputs, SDPA's q/k/v/out/logsumexp, the gated MLP's
three intermediate tensors, what a trainable weight or a LoRA adapter needs for its gradient), the
loss's logits term (materialised by a plain ``model(input_ids, labels=...)`` loop, tiled by TRL's fused
LM head), weights/adapters/gradients/optimizer states, and the optimizer's temporaries. The peak is the
largest of three phases: end of the forward pass (loss), backward through the layers, optimizer step.

nvidia-smi's figure adds the caching allocator's slack (reserved − allocated) and the CUDA context.
The slack terms are the only fitted constants here (see ``SLACK_*``); everything else is counted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import GPUSpec

__all__ = [
    "GIB",
    "LossImpl",
    "MemoryBreakdown",
    "MemoryEstimate",
    "Method",
    "TrainingShape",
    "estimate_memory",
]

GIB = float(2**30)

Method = Literal["full", "lora", "qlora"]
WeightDType = Literal["bf16", "fp16", "fp32", "nf4"]
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit"]
LossImpl = Literal["fused", "standard"]
Parallelism = Literal["ddp", "fsdp"]

# ----------------------------------------------------------------------------------------- constants
#: cuBLAS + cuBLASLt workspaces, allocated through PyTorch's allocator on sm90 (2 × 32 MiB); seen as
#: the 0.064 GiB between the weights and ``memory_allocated()`` after loading.
CUBLAS_WORKSPACE_BYTES = 64 * 2**20
#: Bytes alive per logit at the loss peak of a plain loop: the bf16 logits (2), the previous step's
#: bf16 logits still referenced by the loop variable (2), the fp32 upcast (4) and the fp32
#: log-softmax/gradient pair (4 + 2 of the bf16 gradient). Counted, and confirmed by the standard-loss
#: calibration rows (±1 %).
STANDARD_LOGIT_BYTES = 14.0
#: TRL's fused LM head scores tiles of ``TOKEN_CHUNK`` tokens × ``VOCAB_CHUNK`` vocabulary entries.
FUSED_TOKEN_CHUNK = 4096
FUSED_VOCAB_CHUNK = 32768
#: Backward transients while a layer's MLP is differentiated: gradients of the gate, up and product
#: tensors (3 × intermediate elements per token).
BACKWARD_TRANSIENT_TENSORS = 3.0
#: NF4 storage per quantised weight: 4 bits + one fp32 absmax per 64-weight block.
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64
#: Caching-allocator slack (reserved − allocated at the peak), fitted once over all 33 calibration runs
#: that report reserved memory: a share of the peak, plus the big transients that fragment the cache —
#: the fp32 logits of a materialised loss, one layer's activations (freed and re-made each layer), and
#: the gradient/optimizer temporaries.
SLACK_OF_ALLOCATED = 0.03
SLACK_PER_FP32_LOGITS = 0.95
SLACK_PER_LAYER_ACTIVATIONS = 0.32
SLACK_PER_OPTIMIZER_TRANSIENT = 0.30
#: NCCL communicator buffers per GPU when training on several (not calibrated).
NCCL_BUFFERS_GIB = 0.5


class TrainingShape(BaseModel):
    """What the memory and time models need to know about a training step (per device).

    ``loss="fused"`` models VibeML's trainer (TRL SFTTrainer: fused LM head, bf16 autocast);
    ``loss="standard"`` a plain ``model(input_ids, labels=...)`` loop without autocast.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "lora"
    batch_size: int = Field(4, ge=1, le=65536, description="Sequences per device per micro-step.")
    seq_len: int = Field(1024, ge=1, le=4_194_304)
    gradient_checkpointing: bool = True
    lora_r: int = Field(16, ge=1, le=65536)
    lora_targets: tuple[str, ...] | None = Field(None, description="None = all linear projections.")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    weight_dtype: WeightDType | None = Field(None, description="None = nf4 for qlora, bf16 otherwise.")
    optimizer: Optimizer = "adamw"
    loss: LossImpl = "fused"
    autocast: bool | None = Field(None, description="bf16 autocast; None = on for the fused (TRL) trainer.")
    gpu_count: int = Field(1, ge=1, le=4096)
    parallelism: Parallelism = "ddp"

    @model_validator(mode="after")
    def _consistent(self) -> TrainingShape:
        if self.method == "qlora" and self.weight_dtype not in (None, "nf4"):
            raise ValueError("qlora keeps the base weights in nf4")
        if self.method != "qlora" and self.weight_dtype == "nf4":
            raise ValueError("nf4 weights mean method='qlora'")
        return self

    @property
    def tokens(self) -> int:
        """Tokens per device per micro-step."""
        return self.batch_size * self.seq_len

    @property
    def weights(self) -> WeightDType:
        return self.weight_dtype or ("nf4" if self.method == "qlora" else "bf16")

    @property
    def uses_autocast(self) -> bool:
        return self.loss == "fused" if self.autocast is None else self.autocast


class MemoryBreakdown(BaseModel):
    """Where the memory goes at the peak, GiB. The parts sum to ``MemoryEstimate.total_gib``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: float
    trainable_params: float = Field(description="LoRA adapters (0 for full: counted in weights).")
    gradients: float
    optimizer_states: float
    optimizer_temporaries: float
    activations: float = Field(description="Saved activations (checkpoints + one recomputed layer with GC).")
    logits: float = Field(description="Loss/logits buffers (materialised or tiled).")
    backward_transients: float
    workspace: float = Field(description="cuBLAS workspaces, DDP buckets, FSDP gathered layers.")
    allocator_slack: float = Field(description="Reserved − allocated: the caching allocator's cache.")
    cuda_context: float = Field(description="CUDA context, library handles, NCCL buffers.")


class MemoryEstimate(BaseModel):
    """Predicted memory of one GPU, and whether the run fits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    breakdown: MemoryBreakdown
    peak_phase: Literal["loss", "backward", "optimizer"]
    allocated_gib: float = Field(description="torch.cuda.max_memory_allocated at the peak.")
    reserved_gib: float = Field(description="torch.cuda.max_memory_reserved (allocator cache included).")
    total_gib: float = Field(description="What nvidia-smi shows: reserved + CUDA context (capped at capacity).")
    required_gib: float = Field(description="The least the run needs: allocated + context (cache released).")
    gpu: str | None = None
    capacity_gib: float | None = None
    fits: bool | None = None
    headroom_gib: float | None = Field(None, description="capacity − required; negative when it does not fit.")
    notes: tuple[str, ...] = ()


def _layer_saved_bytes(arch: ModelArchitecture, shape: TrainingShape, act: float) -> tuple[float, float]:
    """Bytes autograd keeps per token for one decoder layer, and the GC checkpoint per token."""
    h, q, kv = arch.hidden_size, arch.q_dim, arch.kv_dim
    moe_k = arch.num_experts_per_tok if arch.is_moe else 1
    inter = arch.expert_intermediate_size if arch.is_moe else arch.intermediate_size
    i_tok = inter * moe_k + (arch.shared_expert_intermediate_size or 0)
    # RMSNorm keeps its fp32-upcast input; SDPA keeps q, k, v, out and a fp32 logsumexp per head.
    base = 4.0 * h * arch.norms_per_layer
    base += act * (2 * q + 2 * kv) + 4.0 * arch.num_attention_heads
    base += act * i_tok * (3 if arch.gated_mlp else 1)
    if arch.is_moe:
        base += 4.0 * arch.num_experts  # router logits
    if shape.method == "full":
        # Trainable weights need their inputs: qkv input, attention output, MLP input, down input,
        # and each norm's pre-scale activation.
        base += act * (h + q + h + i_tok) + act * h * arch.norms_per_layer
        return base, act * h
    targets = arch.resolve_targets(shape.lora_targets)
    shapes = arch.linear_shapes()
    adapter_bytes = 2.0 if shape.method == "qlora" else 4.0  # PEFT upcasts LoRA to fp32; TRL keeps QLoRA bf16
    cast = adapter_bytes != act
    per_module = (2.0 if shape.uses_autocast else adapter_bytes) if cast else act
    seen_inputs: set[str] = set()
    lora = 0.0
    for name in targets:
        d_in, _ = shapes[name]
        mult = moe_k if (arch.is_moe and name in ("gate_proj", "up_proj", "down_proj")) else 1
        group = {
            "q_proj": "attn_in",
            "k_proj": "attn_in",
            "v_proj": "attn_in",
            "gate_proj": "mlp_in",
            "up_proj": "mlp_in",
        }.get(name, name)
        if cast or shape.lora_dropout > 0 or group not in seen_inputs:
            lora += per_module * d_in * mult  # a cast or a dropout makes a per-module copy
        seen_inputs.add(group)
        if shape.lora_dropout > 0:
            lora += 1.0 * d_in * mult  # dropout mask
        lora += (2.0 if shape.uses_autocast else adapter_bytes) * shape.lora_r * mult  # lora_A output
    return base + lora, act * h


def estimate_memory(arch: ModelArchitecture, shape: TrainingShape, gpu: GPUSpec | None = None) -> MemoryEstimate:
    """Predict the peak GPU memory of one device for ``shape`` on ``arch``.

    Args:
        arch: The model's architecture (see :func:`vibeml.catalog.resolve_architecture`).
        shape: Method, batch, sequence, checkpointing, LoRA, precision, optimizer, loss, GPUs.
        gpu: When given, ``fits``/``headroom_gib`` are filled in and ``total_gib`` is capped at its memory.

    Returns:
        A :class:`MemoryEstimate` whose ``total_gib`` is what nvidia-smi would show.
    """
    T = float(shape.tokens)
    h, L, V = arch.hidden_size, arch.num_layers, arch.vocab_size
    n_total = arch.param_count
    weights = shape.weights
    act = 4.0 if (weights == "fp32" and not shape.uses_autocast) else 2.0
    notes: list[str] = []

    # --- persistent: weights, trainable parameters, optimizer states
    if weights == "nf4":
        quantised = L * arch.layer_params - L * arch.hidden_size * arch.norms_per_layer
        weight_bytes = NF4_BYTES_PER_PARAM * quantised + 2.0 * (n_total - quantised)
    else:
        weight_bytes = (4.0 if weights == "fp32" else 2.0) * n_total
    if shape.method == "full":
        n_train = n_total
        param_bytes = 4.0 if weights == "fp32" else 2.0
        adapter_bytes = 0.0
    else:
        n_train = arch.lora_params(shape.lora_r, shape.lora_targets)
        param_bytes = 2.0 if shape.method == "qlora" else 4.0
        adapter_bytes = param_bytes * n_train
    grad_bytes = param_bytes * n_train
    if shape.optimizer == "adamw":
        state_bytes = 2 * param_bytes * n_train
        opt_temp = param_bytes * n_train  # foreach AdamW's sqrt(v) temporary
    else:
        state_bytes = 2.0 * n_train
        opt_temp = 0.0

    # --- multi-GPU: DDP replicates and adds gradient buckets; FSDP shards and gathers a layer at a time
    n = shape.gpu_count
    workspace = float(CUBLAS_WORKSPACE_BYTES)
    if n > 1 and shape.parallelism == "fsdp":
        # FSDP shards the parameters and, for a full fine-tune, their gradients and optimizer states; LoRA
        # adapters (and their gradients and states), activations and buffers stay replicated.
        weight_bytes /= n
        if shape.method == "full":
            grad_bytes /= n
            state_bytes /= n
            opt_temp /= n
        else:
            workspace += grad_bytes  # the replicated adapters' gradients are all-reduced from a bucket
        unit_w = (NF4_BYTES_PER_PARAM if weights == "nf4" else 2.0) * arch.layer_params
        unit_w = max(unit_w, 2.0 * arch.vocab_size * arch.hidden_size)  # the embedding/LM head is a unit too
        workspace += 2 * unit_w  # the gathered current unit + the prefetched next one
    elif n > 1:
        workspace += grad_bytes  # DDP's flat gradient buckets
    if weights == "nf4":
        inter = arch.expert_intermediate_size if arch.is_moe else arch.intermediate_size
        workspace += 2 * 2.0 * arch.hidden_size * inter  # dequantised bf16 copies of the largest weight
    persistent = weight_bytes + adapter_bytes + state_bytes + workspace

    # --- activations
    layer, ckpt = _layer_saved_bytes(arch, shape, act)
    final_norm = (4.0 + (act if shape.method == "full" else 0.0)) * h * T
    if shape.gradient_checkpointing:
        saved_all = ckpt * L * T
        recompute = layer * T
    else:
        saved_all = layer * L * T
        recompute = 0.0
    i_tok = (arch.expert_intermediate_size * arch.num_experts_per_tok) if arch.is_moe else arch.intermediate_size
    transient = BACKWARD_TRANSIENT_TENSORS * act * i_tok * T

    # --- logits
    if shape.loss == "standard":
        logits_peak = STANDARD_LOGIT_BYTES * T * V
        logits_held = 2.0 * T * V  # outputs.logits stays referenced through backward and step
        grad_hidden = 0.0
        fp32_logits = 4.0 * T * V
    else:
        logits_peak = min(T, FUSED_TOKEN_CHUNK) * min(V, FUSED_VOCAB_CHUNK) * act + (act + 4.0 + act) * h * T
        logits_held = 0.0
        grad_hidden = 4.0 * h * T
        fp32_logits = 0.0

    phases = {
        "loss": (saved_all, logits_peak + final_norm, 0.0, 0.0, 0.0),
        "backward": (saved_all + recompute, logits_held + grad_hidden, transient, 0.0, 0.0),
        "optimizer": (0.0, logits_held, 0.0, grad_bytes, opt_temp),
    }
    totals = {k: persistent + sum(v) for k, v in phases.items()}
    peak_phase = max(totals, key=lambda k: totals[k])
    p_act, p_logits, p_trans, p_grads, p_temp = phases[peak_phase]
    allocated = totals[peak_phase]

    slack = (
        SLACK_OF_ALLOCATED * allocated
        + SLACK_PER_FP32_LOGITS * fp32_logits
        + SLACK_PER_LAYER_ACTIVATIONS * layer * T
        + SLACK_PER_OPTIMIZER_TRANSIENT * (grad_bytes + opt_temp) * (1.0 if shape.method == "full" else 0.0)
    )
    context = (gpu.cuda_context_gib if gpu else 0.75) + (NCCL_BUFFERS_GIB if n > 1 else 0.0)
    reserved = allocated + slack
    total = reserved / GIB + context
    required = allocated / GIB + context

    fits: bool | None = None
    headroom: float | None = None
    capacity: float | None = None
    if gpu is not None:
        capacity = gpu.memory_gib
        fits = required <= capacity
        headroom = capacity - required
        if fits and total > capacity:
            notes.append(
                "the allocator's cache would outgrow the GPU; PyTorch frees cached blocks and retries, "
                "so it runs, with little headroom"
            )
            slack = max(0.0, (capacity - context) * GIB - allocated)
            total = capacity
        elif fits and headroom < 0.05 * capacity:
            notes.append("less than 5% headroom: a longer sample or a different allocator pattern may OOM")
        if not gpu.bf16 and weights in ("bf16", "nf4"):
            notes.append(f"{gpu.name} has no native bf16: training runs in fp16 with loss scaling")
    if shape.method == "qlora":
        notes.append("QLoRA memory is modelled, not calibrated (NF4 weights, bf16 adapters as TRL sets them)")
    if n > 1:
        notes.append(f"multi-GPU ({shape.parallelism}) memory is modelled, not calibrated")
    if n > 1 and shape.parallelism == "fsdp":
        sharded = "weights, gradients and optimizer states" if shape.method == "full" else "base weights"
        kept = "activations and buffers" if shape.method == "full" else "LoRA adapters (gradients, states), activations"
        notes.append(f"fsdp over {n} GPUs: {sharded} sharded {n} ways; {kept} replicated on every GPU")

    breakdown = MemoryBreakdown(
        weights=weight_bytes / GIB,
        trainable_params=adapter_bytes / GIB,
        gradients=p_grads / GIB,
        optimizer_states=state_bytes / GIB,
        optimizer_temporaries=p_temp / GIB,
        activations=p_act / GIB,
        logits=p_logits / GIB,
        backward_transients=p_trans / GIB,
        workspace=workspace / GIB,
        allocator_slack=slack / GIB,
        cuda_context=context,
    )
    return MemoryEstimate(
        breakdown=breakdown,
        peak_phase=peak_phase,
        allocated_gib=allocated / GIB,
        reserved_gib=(allocated + slack) / GIB,
        total_gib=total,
        required_gib=required,
        gpu=gpu.name if gpu else None,
        capacity_gib=capacity,
        fits=fits,
        headroom_gib=headroom,
        notes=tuple(notes),
    )
