"""Training speed and time: tokens/s of a step, tokens in a job, setup time, wall-clock hours.

A step costs the larger of GPU time and host time (the GPU runs behind the Python host):

* GPU time = matmul FLOPs / (peak × ``MATMUL_EFFICIENCY``) + bytes moved by memory-bound kernels /
  (bandwidth × ``MEMORY_EFFICIENCY``). FLOPs are ``k × params × tokens`` with k = 2 per forward pass,
  2 for the input gradients, 2 more for weight gradients (full fine-tuning), 2 more for the
  checkpointing recompute — the k ≈ 4/6/8 rule — plus attention and the LM head. Bytes moved are the
  elementwise traffic of norms, activations, LoRA's dtype casts and the loss.
* Host time = the per-step Python/launch overhead: per layer and per forward-equivalent pass, plus per
  LoRA module. This is the floor that makes small models and batches overhead-bound.

The four efficiency/overhead constants were fitted once over all calibration runs (docs/estimator.md).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import GPUSpec, gpu_link
from vibeml.estimate.memory import NF4_BYTES_PER_PARAM, TrainingShape

__all__ = [
    "SetupEstimate",
    "SetupProfile",
    "ThroughputEstimate",
    "TimeEstimate",
    "Workload",
    "communication_s",
    "estimate_setup",
    "estimate_throughput",
    "estimate_training_time",
    "workload_tokens",
]

# ----------------------------------------------------------------------------------------- constants
#: Share of the dense bf16 peak the training matmuls reach (fitted; a lone H100 matmul reaches 0.81).
MATMUL_EFFICIENCY = 0.70
#: Share of peak memory bandwidth the elementwise kernels reach (fitted).
MEMORY_EFFICIENCY = 0.60
#: Host overhead per decoder layer per forward-equivalent pass, seconds (fitted on the calibration host).
HOST_S_PER_LAYER_PASS = 3.07e-3
#: Extra host overhead per LoRA-wrapped module per layer per pass, seconds (fitted).
HOST_S_PER_LORA_MODULE_PASS = 0.28e-3
#: The backward pass costs this many forward passes of host time (fitted).
HOST_BACKWARD_PASSES = 0.67
#: Bytes an elementwise-bound layer moves per token per forward pass: ≈ 60 per hidden unit (norms in
#: fp32, residual adds, RoPE, SDPA I/O) and ≈ 10 per MLP unit (activation and gating).
TRAFFIC_PER_HIDDEN = 60.0
TRAFFIC_PER_INTERMEDIATE = 10.0
#: LoRA's per-module traffic per token (bytes per input / output feature): the fp32 cast of the input,
#: the low-rank matmuls' reads and the add back into the base output.
LORA_TRAFFIC_FP32 = (10.0, 16.0)  # fp32 adapters, no autocast (plain loop)
LORA_TRAFFIC_AUTOCAST = (14.0, 10.0)  # fp32 adapters under bf16 autocast (TRL)
LORA_TRAFFIC_SAME_DTYPE = (4.0, 8.0)  # bf16 adapters on bf16 activations (QLoRA in TRL)
#: Bytes moved per logit by a materialised loss (bf16 logits, fp32 upcast, log-softmax passes and the
#: backward) and by the fused, tiled loss.
LOGIT_TRAFFIC_STANDARD = 64.0
LOGIT_TRAFFIC_FUSED = 6.0
#: Optimizer step traffic per trainable parameter (foreach AdamW reads/writes p, g, m, v, temporaries).
OPTIMIZER_TRAFFIC = {"adamw": 24.0, "adamw_8bit": 10.0, "paged_adamw_8bit": 10.0}
#: Share of gradient/parameter communication hidden behind compute (DDP buckets, FSDP prefetch).
COMM_OVERLAP = 0.7
#: DDP's gradient bucket size (PyTorch's default ``bucket_cap_mb``): one all-reduce per bucket.
DDP_BUCKET_BYTES = 25 * 2**20


class ThroughputEstimate(BaseModel):
    """Speed of one training step on one configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_s: float = Field(description="Tokens per second over all GPUs.")
    step_time_s: float = Field(description="One micro-step (batch × seq per device).")
    gpu_time_s: float
    matmul_time_s: float
    memory_time_s: float
    host_time_s: float
    comm_time_s: float = 0.0
    flops_per_step: float = Field(description="Per device.")
    mfu: float = Field(description="Achieved model FLOPs utilisation (6·N-style FLOPs / peak).")
    bound: Literal["compute", "memory", "host"]


class Workload(BaseModel):
    """How much training a job does: steps, or a dataset × epochs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_steps: int | None = Field(None, ge=1)
    num_epochs: float | None = Field(None, gt=0)
    dataset_rows: int | None = Field(None, ge=1)
    mean_tokens_per_row: float | None = Field(None, gt=0)
    dataset_tokens: int | None = Field(None, ge=1, description="Counted tokens of one epoch, when known.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    packing: bool = False

    @model_validator(mode="after")
    def _enough(self) -> Workload:
        if self.max_steps is None and self.dataset_rows is None and self.dataset_tokens is None:
            raise ValueError("give max_steps, dataset_rows (with mean_tokens_per_row) or dataset_tokens")
        return self


class SetupProfile(BaseModel):
    """What happens before the first step: provisioning, installing, downloading, loading."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provisioning_s: float = Field(180.0, ge=0, description="Request to a usable machine.")
    install_s: float = Field(240.0, ge=0, description="pip install of the training stack in a CUDA image.")
    download_mb_s: float = Field(200.0, gt=0, description="Model download speed from the hub.")
    load_gb_s: float = Field(2.0, gt=0, description="Disk → GPU loading speed.")
    dataset_s: float = Field(30.0, ge=0, description="Dataset download and tokenisation.")
    save_s: float = Field(30.0, ge=0, description="Saving and copying an adapter out at the end.")


class SetupEstimate(BaseModel):
    """Setup time, seconds, by part."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provisioning_s: float
    install_s: float
    download_s: float
    load_s: float
    dataset_s: float
    save_s: float

    @property
    def total_s(self) -> float:
        return self.provisioning_s + self.install_s + self.download_s + self.load_s + self.dataset_s + self.save_s


class TimeEstimate(BaseModel):
    """Wall-clock time of a job: setup plus training, with a range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(description="Optimizer steps.")
    tokens: float = Field(description="Tokens processed over all GPUs (padding included).")
    tokens_per_s: float
    train_s: float
    setup: SetupEstimate
    total_s: float
    hours: float
    min_hours: float
    max_hours: float
    effective_seq_len: int


def _flops_per_step(arch: ModelArchitecture, shape: TrainingShape) -> tuple[float, float]:
    """(FLOPs per device per micro-step, "model FLOPs" 6·N·T-style for MFU)."""
    T = float(shape.tokens)
    full = shape.method == "full"
    gc = shape.gradient_checkpointing
    head = float(arch.vocab_size * arch.hidden_size)
    layer_params = float(arch.compute_params) - head
    k_layers = 2 + 2 + (2 if full else 0) + (2 if gc else 0)
    k_head = 2 + 2 + (2 if full else 0) + (2 if shape.loss == "fused" else 0)
    attn = (3.5 + (1.0 if gc else 0.0)) * 2.0 * shape.seq_len * arch.q_dim * arch.num_layers
    lora = 0.0
    if not full:
        lora = (6.0 + (2.0 if gc else 0.0)) * arch.lora_params(shape.lora_r, shape.lora_targets)
    flops = (k_layers * layer_params + k_head * head + attn + lora) * T
    model_flops = (
        (6.0 if full else 4.0) * (layer_params + head) + 3.5 * 2.0 * shape.seq_len * arch.q_dim * arch.num_layers
    ) * T
    return flops, model_flops


def _traffic_per_step(arch: ModelArchitecture, shape: TrainingShape) -> float:
    """Bytes moved by memory-bound kernels per device per micro-step."""
    T = float(shape.tokens)
    h = arch.hidden_size
    i_tok = (arch.expert_intermediate_size * arch.num_experts_per_tok) if arch.is_moe else arch.intermediate_size
    passes = 1 + (1 if shape.gradient_checkpointing else 0) + 2  # forward, recompute, backward ≈ 2
    per_layer = TRAFFIC_PER_HIDDEN * h + TRAFFIC_PER_INTERMEDIATE * i_tok
    if shape.method != "full":
        if shape.method == "qlora":
            c_in, c_out = LORA_TRAFFIC_SAME_DTYPE
        elif shape.uses_autocast:
            c_in, c_out = LORA_TRAFFIC_AUTOCAST
        else:
            c_in, c_out = LORA_TRAFFIC_FP32
        shapes = arch.linear_shapes()
        for name in arch.resolve_targets(shape.lora_targets):
            d_in, d_out = shapes[name]
            per_layer += c_in * d_in + c_out * d_out
    traffic = per_layer * passes * arch.num_layers * T
    v = float(arch.vocab_size)
    traffic += (LOGIT_TRAFFIC_STANDARD if shape.loss == "standard" else LOGIT_TRAFFIC_FUSED) * T * v
    if shape.method == "full":
        traffic += (
            OPTIMIZER_TRAFFIC[shape.optimizer]
            * arch.param_count
            / shape.gpu_count ** (1 if shape.parallelism == "fsdp" else 0)
        )
    if shape.weights == "nf4":
        # every pass dequantises each weight: read NF4, write bf16
        traffic += (NF4_BYTES_PER_PARAM + 2.0) * arch.num_layers * arch.layer_params * passes
    return traffic


def communication_s(arch: ModelArchitecture, shape: TrainingShape, gpu: GPUSpec, grad_accum: int = 1) -> float:
    """Exposed communication time per micro-step on ``shape.gpu_count`` GPUs over the catalogue's link.

    Ring collectives move ``(n − 1) / n`` of a tensor per GPU for an all-gather or a reduce-scatter and twice
    that for an all-reduce. DDP all-reduces the trainable gradients once per optimizer step (accumulation
    micro-steps skip the sync); FSDP all-gathers the sharded weights in the forward and again in the
    backward and reduce-scatters the full model's gradients every micro-step; LoRA adapters under FSDP stay
    replicated, so their gradients are all-reduced once per optimizer step as under DDP. ``COMM_OVERLAP`` of
    the transfer hides behind compute; each collective adds the link's latency.
    """
    n = shape.gpu_count
    if n <= 1:
        return 0.0
    link = gpu_link(gpu, n)
    ring = (n - 1) / n
    full = shape.method == "full"
    trainable = arch.param_count if full else arch.lora_params(shape.lora_r, shape.lora_targets)
    grad_bytes = (2.0 if full else 4.0) * trainable
    collectives = 0.0
    if shape.parallelism == "fsdp":
        w_bytes = (NF4_BYTES_PER_PARAM if shape.weights == "nf4" else 2.0) * arch.param_count
        moved = 2 * ring * w_bytes  # all-gather forward + backward
        collectives += 2 * arch.num_layers
        if full:
            moved += ring * grad_bytes  # reduce-scatter, every micro-step
            collectives += arch.num_layers
        else:
            moved += 2 * ring * grad_bytes / grad_accum
            collectives += arch.num_layers / grad_accum
    else:
        moved = 2 * ring * grad_bytes / grad_accum
        collectives += max(1.0, grad_bytes / DDP_BUCKET_BYTES) / grad_accum
    return moved / (link.gbs * 1e9) * (1.0 - COMM_OVERLAP) + collectives * link.latency_s


def estimate_throughput(
    arch: ModelArchitecture, shape: TrainingShape, gpu: GPUSpec, grad_accum: int = 1
) -> ThroughputEstimate:
    """Tokens/s of ``shape`` on ``gpu`` (× ``shape.gpu_count``), with what bounds it.

    Args:
        arch: Model architecture.
        shape: Step shape (per-device batch and sequence, method, checkpointing, loss, GPU count).
        gpu: The GPU model.
        grad_accum: Micro-steps per optimizer step (DDP synchronises gradients once per optimizer step).
    """
    flops, model_flops = _flops_per_step(arch, shape)
    matmul_s = flops / (gpu.bf16_tflops * 1e12 * MATMUL_EFFICIENCY)
    memory_s = _traffic_per_step(arch, shape) / (gpu.memory_bandwidth_gbs * 1e9 * MEMORY_EFFICIENCY)
    gpu_s = matmul_s + memory_s
    n_lora = 0 if shape.method == "full" else len(arch.resolve_targets(shape.lora_targets))
    fwd_passes = 2 if shape.gradient_checkpointing else 1
    host_s = (
        arch.num_layers
        * (fwd_passes + HOST_BACKWARD_PASSES)
        * (HOST_S_PER_LAYER_PASS + n_lora * HOST_S_PER_LORA_MODULE_PASS)
    )
    comm_s = communication_s(arch, shape, gpu, grad_accum)
    step_s = max(gpu_s, host_s) + comm_s
    tokens_per_s = shape.gpu_count * shape.tokens / step_s
    if host_s >= gpu_s:
        bound: Literal["compute", "memory", "host"] = "host"
    else:
        bound = "compute" if matmul_s >= memory_s else "memory"
    mfu = model_flops / step_s / (gpu.bf16_tflops * 1e12)
    return ThroughputEstimate(
        tokens_per_s=tokens_per_s,
        step_time_s=step_s,
        gpu_time_s=gpu_s,
        matmul_time_s=matmul_s,
        memory_time_s=memory_s,
        host_time_s=host_s,
        comm_time_s=comm_s,
        flops_per_step=flops,
        mfu=mfu,
        bound=bound,
    )


#: Without packing, a batch is padded to its longest row; for rows of mean length m the longest of a
#: batch is about this much longer than m (batch > 1).
PADDING_FACTOR = 1.25


def workload_tokens(workload: Workload, shape: TrainingShape) -> tuple[int, int, float]:
    """(optimizer steps, effective sequence length, tokens processed over all GPUs)."""
    per_step_rows = shape.batch_size * workload.gradient_accumulation_steps * shape.gpu_count
    seq = shape.seq_len
    if workload.packing or workload.mean_tokens_per_row is None:
        eff = seq
    else:
        pad = PADDING_FACTOR if shape.batch_size > 1 else 1.0
        eff = max(1, min(seq, math.ceil(workload.mean_tokens_per_row * pad)))
    if workload.max_steps is not None:
        steps = workload.max_steps
    else:
        epochs = workload.num_epochs or 1.0
        if workload.dataset_tokens is not None and (workload.packing or workload.dataset_rows is None):
            rows_equiv = workload.dataset_tokens / seq if workload.packing else workload.dataset_tokens / eff
            rows = rows_equiv * epochs
        else:
            assert workload.dataset_rows is not None
            rows = workload.dataset_rows * epochs
            if workload.packing and workload.mean_tokens_per_row:
                rows = rows * min(seq, workload.mean_tokens_per_row) / seq
        steps = max(1, math.ceil(rows / per_step_rows))
    tokens = float(steps) * per_step_rows * eff
    return steps, eff, tokens


def estimate_setup(arch: ModelArchitecture, shape: TrainingShape, profile: SetupProfile | None = None) -> SetupEstimate:
    """Time before training starts and after it ends: provisioning, install, download, load, save."""
    p = profile or SetupProfile()
    size = float(arch.weight_bytes_bf16)
    save_s = p.save_s if shape.method != "full" else p.save_s + size / (p.download_mb_s * 1e6)
    return SetupEstimate(
        provisioning_s=p.provisioning_s,
        install_s=p.install_s,
        download_s=size / (p.download_mb_s * 1e6),
        load_s=size / (p.load_gb_s * 1e9),
        dataset_s=p.dataset_s,
        save_s=save_s,
    )


#: The time model's spread on the calibration runs is within ±30 % (T ≥ 4096); the range is wider for
#: setup (provisioning and downloads vary most).
TRAIN_TIME_RANGE = (0.75, 1.35)
SETUP_TIME_RANGE = (0.6, 2.0)


def estimate_training_time(
    arch: ModelArchitecture,
    shape: TrainingShape,
    gpu: GPUSpec,
    workload: Workload,
    setup: SetupProfile | None = None,
) -> tuple[TimeEstimate, ThroughputEstimate]:
    """Wall-clock time of a job: setup + steps × step time, with a min/max range.

    The throughput is evaluated at the effective sequence length (rows shorter than ``seq_len`` are
    padded only to the longest row of their batch).
    """
    steps, eff, tokens = workload_tokens(workload, shape)
    eff_shape = shape if eff == shape.seq_len else shape.model_copy(update={"seq_len": eff})
    speed = estimate_throughput(arch, eff_shape, gpu, workload.gradient_accumulation_steps)
    train_s = tokens / speed.tokens_per_s
    setup_est = estimate_setup(arch, shape, setup)
    total = train_s + setup_est.total_s
    lo = (train_s * TRAIN_TIME_RANGE[0] + setup_est.total_s * SETUP_TIME_RANGE[0]) / 3600
    hi = (train_s * TRAIN_TIME_RANGE[1] + setup_est.total_s * SETUP_TIME_RANGE[1]) / 3600
    time = TimeEstimate(
        steps=steps,
        tokens=tokens,
        tokens_per_s=speed.tokens_per_s,
        train_s=train_s,
        setup=setup_est,
        total_s=total,
        hours=total / 3600,
        min_hours=lo,
        max_hours=hi,
        effective_seq_len=eff,
    )
    return time, speed
