"""GPU facts: usable memory, dense bf16 peak, memory bandwidth, interconnect, and names across clouds.

Figures are public datasheet numbers (dense tensor-core peaks, i.e. without 2:4 sparsity) except the
H100's usable memory, which is what ``torch.cuda.get_device_properties().total_memory`` reported on the
calibration machine (79.18 GiB of the nominal 80 GB). Other usable-memory figures are the nominal
``nvidia-smi`` total less the same ~1 % the H100 loses to the driver's reservation.

Every module that needs a GPU name goes through :func:`resolve_gpu`, so "RTX 4090", "RTX4090", "4090",
"NVIDIA GeForce RTX 4090" and Vast's ``gpu_name`` all land on one :class:`GPUSpec`.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.exceptions import ConfigurationError

__all__ = [
    "GPUS",
    "GPUS_PER_NODE",
    "GPUSpec",
    "LinkSpec",
    "gpu_link",
    "list_gpus",
    "normalize_gpu_name",
    "resolve_gpu",
    "try_resolve_gpu",
]

#: Memory the CUDA context plus cuBLAS/cuDNN handles and loaded kernel images hold outside PyTorch's
#: allocator. Measured on H100: nvidia-smi used − torch reserved = 0.749–0.753 GiB over 35 runs
#: (0.514 GiB of it is the bare context).
CUDA_CONTEXT_GIB = 0.75


class GPUSpec(BaseModel):
    """One GPU model's facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Canonical name used everywhere in VibeML (e.g. 'A100-80GB').")
    memory_gib: float = Field(gt=0, description="Usable device memory (what torch reports as total).")
    bf16_tflops: float = Field(gt=0, description="Dense tensor-core peak (bf16; fp16 where bf16 is absent).")
    memory_bandwidth_gbs: float = Field(gt=0, description="HBM/GDDR bandwidth, GB/s.")
    interconnect_gbs: float = Field(gt=0, description="GPU-to-GPU bandwidth per direction, GB/s.")
    architecture: Literal["hopper", "ada", "ampere", "turing", "volta"]
    compute_capability: str
    bf16: bool = Field(description="Native bf16 support (compute capability >= 8.0).")
    tier: Literal["datacenter", "workstation", "consumer"]
    cuda_context_gib: float = CUDA_CONTEXT_GIB
    aliases: tuple[str, ...] = ()
    source: str = ""


def _gpu(
    name: str,
    memory_gib: float,
    tflops: float,
    bandwidth: float,
    interconnect: float,
    arch: Literal["hopper", "ada", "ampere", "turing", "volta"],
    cc: str,
    tier: Literal["datacenter", "workstation", "consumer"],
    aliases: tuple[str, ...],
    source: str,
) -> GPUSpec:
    return GPUSpec(
        name=name,
        memory_gib=memory_gib,
        bf16_tflops=tflops,
        memory_bandwidth_gbs=bandwidth,
        interconnect_gbs=interconnect,
        architecture=arch,
        compute_capability=cc,
        bf16=float(cc) >= 8.0,
        tier=tier,
        aliases=aliases,
        source=source,
    )


_NV = "NVIDIA datasheet"
# PCIe 4.0 x16 ≈ 25 GB/s usable per direction; NVLink figures are per direction.
_PCIE4 = 25.0
_PCIE3 = 12.0

#: The catalogue. Keys are canonical names.
GPUS: dict[str, GPUSpec] = {
    g.name: g
    for g in (
        _gpu(
            "H200",
            139.8,
            989.0,
            4800.0,
            450.0,
            "hopper",
            "9.0",
            "datacenter",
            ("H200 SXM", "H200-141GB", "H200 141GB HBM3e", "NVIDIA H200", "H200-SXM"),
            _NV,
        ),
        _gpu(
            "H100",
            79.18,
            989.0,
            3350.0,
            450.0,
            "hopper",
            "9.0",
            "datacenter",
            (
                "H100 SXM",
                "H100-SXM",
                "H100 SXM5",
                "H100-80GB",
                "H100 80GB HBM3",
                "NVIDIA H100 80GB HBM3",
                "H100-MEGA",
                "H100 NVL",
                "H100 PCIE",
            ),
            "NVIDIA H100 SXM datasheet; usable memory measured (calibration)",
        ),
        _gpu(
            "A100-80GB",
            79.15,
            312.0,
            2039.0,
            300.0,
            "ampere",
            "8.0",
            "datacenter",
            (
                "A100 80GB",
                "A100-SXM4-80GB",
                "A100 SXM4 80GB",
                "A100 80GB SXM4",
                "A100 80GB PCIe",
                "A100-80GB-SXM",
                "A100 SXM 80GB",
                "NVIDIA A100-SXM4-80GB",
                "A100-PCIE-80GB",
            ),
            _NV,
        ),
        _gpu(
            "A100-40GB",
            39.39,
            312.0,
            1555.0,
            300.0,
            "ampere",
            "8.0",
            "datacenter",
            (
                "A100",
                "A100 40GB",
                "A100-SXM4-40GB",
                "A100 SXM4",
                "A100 PCIE",
                "A100-PCIE-40GB",
                "NVIDIA A100-SXM4-40GB",
                "A100 SXM4 40GB",
            ),
            _NV,
        ),
        _gpu("L40S", 44.39, 362.0, 864.0, _PCIE4, "ada", "8.9", "datacenter", ("NVIDIA L40S", "L40-S"), _NV),
        _gpu("L40", 44.39, 181.0, 864.0, _PCIE4, "ada", "8.9", "datacenter", ("NVIDIA L40",), _NV),
        _gpu(
            "A10G",
            22.07,
            125.0,
            600.0,
            _PCIE4,
            "ampere",
            "8.6",
            "datacenter",
            ("NVIDIA A10G",),
            "AWS g5 (A10G); peak as used in FACTS.md",
        ),
        _gpu("A10", 22.07, 125.0, 600.0, _PCIE4, "ampere", "8.6", "datacenter", ("NVIDIA A10", "A10 PCIE"), _NV),
        _gpu("L4", 22.03, 121.0, 300.0, _PCIE4, "ada", "8.9", "datacenter", ("NVIDIA L4",), _NV),
        _gpu(
            "RTX 4090",
            23.65,
            165.0,
            1008.0,
            _PCIE4,
            "ada",
            "8.9",
            "consumer",
            ("RTX4090", "4090", "GeForce RTX 4090", "NVIDIA GeForce RTX 4090", "RTX-4090"),
            "NVIDIA Ada whitepaper (165 dense / 330 sparse)",
        ),
        _gpu(
            "RTX 3090",
            23.69,
            71.0,
            936.0,
            _PCIE4,
            "ampere",
            "8.6",
            "consumer",
            ("RTX3090", "3090", "GeForce RTX 3090", "NVIDIA GeForce RTX 3090", "RTX-3090", "RTX 3090 Ti"),
            "NVIDIA Ampere GA102 whitepaper",
        ),
        _gpu(
            "RTX A6000",
            47.54,
            155.0,
            768.0,
            _PCIE4,
            "ampere",
            "8.6",
            "workstation",
            ("A6000", "RTXA6000", "RTX-A6000", "NVIDIA RTX A6000"),
            _NV,
        ),
        _gpu(
            "T4",
            14.58,
            65.0,
            320.0,
            _PCIE3,
            "turing",
            "7.5",
            "datacenter",
            ("Tesla T4", "NVIDIA T4", "NVIDIA Tesla T4"),
            "NVIDIA T4 datasheet (fp16; no bf16)",
        ),
        _gpu(
            "V100",
            15.77,
            125.0,
            900.0,
            150.0,
            "volta",
            "7.0",
            "datacenter",
            ("V100-16GB", "Tesla V100", "V100 SXM2", "V100-SXM2-16GB", "NVIDIA Tesla V100-SXM2-16GB", "V100 16GB"),
            "NVIDIA V100 datasheet (fp16; no bf16)",
        ),
        _gpu(
            "V100-32GB",
            31.74,
            125.0,
            900.0,
            150.0,
            "volta",
            "7.0",
            "datacenter",
            ("V100 32GB", "V100-SXM2-32GB", "Tesla V100 32GB", "NVIDIA Tesla V100-SXM2-32GB"),
            "NVIDIA V100 datasheet (fp16; no bf16)",
        ),
    )
}

_STRIP_WORDS = ("NVIDIA", "GEFORCE", "TESLA")


def normalize_gpu_name(name: str) -> str:
    """Fold a GPU name to a comparison key: upper case, vendor words and separators removed."""
    key = name.upper()
    for word in _STRIP_WORDS:
        key = key.replace(word, "")
    return re.sub(r"[^A-Z0-9]", "", key)


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for spec in GPUS.values():
        for alias in (spec.name, *spec.aliases):
            key = normalize_gpu_name(alias)
            if key in index and index[key] != spec.name:  # pragma: no cover - catalogue invariant
                raise RuntimeError(f"GPU alias {alias!r} maps to both {index[key]} and {spec.name}")
            index[key] = spec.name
    return index


_INDEX = _build_index()


def try_resolve_gpu(name: str) -> GPUSpec | None:
    """The :class:`GPUSpec` for ``name`` (any alias, spacing or case), or ``None`` when unknown."""
    if not isinstance(name, str) or not name.strip():
        return None
    key = normalize_gpu_name(name.split(":")[0])
    canonical = _INDEX.get(key)
    if canonical is None:
        # "H100x8", "8x H100" and similar count suffixes/prefixes.
        stripped = re.sub(r"^\d+X|X\d+$", "", key)
        canonical = _INDEX.get(stripped)
    return GPUS[canonical] if canonical else None


def resolve_gpu(name: str) -> GPUSpec:
    """Resolve any spelling of a GPU name to its :class:`GPUSpec`.

    Args:
        name: "H100", "h100-sxm", "RTX4090", "4090", "A100 80GB SXM4", a Vast ``gpu_name``, or a
            SkyPilot accelerator string like "A100-80GB:8" (the count is ignored).

    Raises:
        ConfigurationError: the name matches no known GPU; the message suggests the closest ones.
    """
    spec = try_resolve_gpu(name)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(normalize_gpu_name(str(name)), list(_INDEX), n=3, cutoff=0.5)
    suggestions = sorted({_INDEX[c] for c in close})
    hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
    raise ConfigurationError(
        f"Unknown GPU type {name!r}.{hint}",
        {"gpu": name, "known": sorted(GPUS)},
        "Run `vibeml gpus` for the GPUs VibeML knows.",
    )


def list_gpus() -> list[GPUSpec]:
    """Every catalogued GPU, largest memory first."""
    return sorted(GPUS.values(), key=lambda g: (-g.memory_gib, -g.bf16_tflops, g.name))


# ------------------------------------------------------------------------------------------ links
#: GPUs in one node; more than this means several nodes joined by the network.
GPUS_PER_NODE = 8
#: Between nodes: 100 Gb/s Ethernet per node (what clouds rent without InfiniBand), GB/s per direction,
#: shared by the node's GPUs.
NETWORK_GBS = 12.5
#: Latency of one collective (ring set-up, kernel launch), seconds, by link.
LINK_LATENCY_S = {"nvlink": 15e-6, "pcie": 30e-6, "network": 60e-6}


class LinkSpec(BaseModel):
    """The slowest link a collective over ``gpu_count`` GPUs crosses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["nvlink", "pcie", "network"]
    gbs: float = Field(gt=0, description="Bandwidth per GPU per direction, GB/s.")
    latency_s: float
    nodes: int


def gpu_link(gpu: GPUSpec, gpu_count: int) -> LinkSpec:
    """The link a ring collective over ``gpu_count`` × ``gpu`` runs at: NVLink or PCIe inside a node (the
    catalogue's ``interconnect_gbs``; above PCIe 4.0's figure means NVLink), the network between nodes."""
    nodes = max(1, -(-gpu_count // GPUS_PER_NODE))
    if nodes > 1:
        per_gpu = NETWORK_GBS / min(gpu_count, GPUS_PER_NODE)
        return LinkSpec(kind="network", gbs=per_gpu, latency_s=LINK_LATENCY_S["network"], nodes=nodes)
    kind: Literal["nvlink", "pcie"] = "nvlink" if gpu.interconnect_gbs > _PCIE4 else "pcie"
    return LinkSpec(kind=kind, gbs=gpu.interconnect_gbs, latency_s=LINK_LATENCY_S[kind], nodes=1)
