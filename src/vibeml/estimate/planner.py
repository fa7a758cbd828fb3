"""The planner: every (cloud, GPU, count, spot) choice, ranked by expected TOTAL job cost.

Price per hour is the wrong ranking: a GPU that costs twice as much per hour but trains three times as
fast is cheaper overall, and setup time is paid on every choice. For each quote in the price table (live
quotes laid over it by the caller) and each GPU count it can be rented with, the planner chooses the
configuration (micro-batch × accumulation × checkpointing × strategy, :mod:`vibeml.estimate.autoconfig`)
that trains the same effective batch cheapest with its memory headroom, estimates time (setup + training)
and cost, drops what does not fit, cannot run or breaks a constraint — saying why — and sorts the rest by
expected cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vibeml.catalog.architectures import ModelArchitecture
from vibeml.catalog.gpus import GPUS_PER_NODE, GPUSpec, resolve_gpu
from vibeml.catalog.prices import CLOUDS, PriceQuote, PriceTable
from vibeml.estimate.autoconfig import (
    PLANNER_HEADROOM,
    AutoConfig,
    BatchPolicy,
    ConfigTrial,
    NoConfig,
    Strategy,
    batch_splits,
    choose_config,
)
from vibeml.estimate.cost import (
    DatasetStats,
    JobEstimate,
    estimate_job,
    shape_from_request,
    workload_from_request,
)
from vibeml.estimate.memory import LossImpl, TrainingShape
from vibeml.estimate.throughput import SetupProfile, Workload
from vibeml.exceptions import BudgetExceededError, ConfigurationError, ResourceError
from vibeml.models import TrainingRequest

__all__ = [
    "Plan",
    "PlanConstraints",
    "PlanOption",
    "RejectedOption",
    "plan_request",
    "plan_training",
    "policy_from_request",
    "request_for_option",
    "request_for_processes",
    "unsupported_strategies",
]


class PlanConstraints(BaseModel):
    """What the user allows. ``None`` means no constraint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cost: float | None = Field(None, gt=0, description="Budget in USD (expected total cost).")
    max_hours: float | None = Field(None, gt=0, description="Wall-clock limit, setup included.")
    clouds: tuple[str, ...] | None = None
    spot: bool | None = Field(None, description="True: spot only; False: on-demand only; None: both.")
    gpu_types: tuple[str, ...] | None = None
    gpu_counts: tuple[int, ...] = Field((1, 2, 4, 8), description="GPUs per machine (node) to consider.")
    max_nodes: int = Field(
        1,
        ge=1,
        le=64,
        description="Machines one job may span (1: single-machine backends such as Vast and local). Above 1, "
        f"jobs of full {GPUS_PER_NODE}-GPU nodes joined by the network are considered when one node of that GPU "
        "cannot hold the job (or a max_hours limit is set).",
    )
    parallelism: Literal["auto", "ddp", "fsdp"] = "auto"
    memory_headroom: float = Field(PLANNER_HEADROOM, ge=0.0, lt=1.0, description="Share of GPU memory kept free.")
    unsupported_strategies: dict[str, str] = Field(
        default_factory=dict, description="Strategy → why the workflow or backend cannot run it (never planned)."
    )


class PlanOption(BaseModel):
    """One ranked choice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int
    cloud: str
    region: str
    gpu: str
    gpu_count: int = Field(description="GPUs per node (machine); the job has gpu_count × num_nodes.")
    num_nodes: int = Field(1, ge=1, description="Machines, joined by the network (torchrun across nodes).")
    spot: bool
    parallelism: Strategy = Field(description="The strategy (same as ``strategy``; kept for old readers).")
    strategy: Strategy
    micro_batch: int = Field(description="Sequences per GPU per micro-step (the trainer's batch_size).")
    grad_accum: int
    gradient_checkpointing: bool
    effective_batch: int = Field(description="micro_batch × grad_accum × gpu_count × num_nodes.")
    config_reason: str = Field(description="Why this configuration, of those tried on this GPU choice.")
    trials: tuple[ConfigTrial, ...] = ()
    usd_per_gpu_hour: float
    hourly_rate: float
    hours: float
    train_hours: float
    setup_hours: float
    tokens_per_s: float
    memory_gib: float
    capacity_gib: float
    expected_cost: float
    min_cost: float
    max_cost: float
    live_price: bool
    instance: str = ""
    offer_id: str | None = None
    estimate: JobEstimate


class RejectedOption(BaseModel):
    """A choice the planner dropped, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: str
    region: str
    gpu: str
    gpu_count: int
    spot: bool
    num_nodes: int = 1
    reason: Literal[
        "does_not_fit", "too_slow", "over_budget", "batch_split", "unsupported_strategy", "multi_node_unsupported"
    ]
    detail: str
    expected_cost: float | None = None


class Plan(BaseModel):
    """Options that fit, cheapest first, and the ones dropped with reasons."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    options: tuple[PlanOption, ...]
    rejected: tuple[RejectedOption, ...]
    constraints: PlanConstraints

    @property
    def cheapest(self) -> PlanOption | None:
        return self.options[0] if self.options else None


def _option_summary(o: PlanOption) -> dict[str, object]:
    return {
        "cloud": o.cloud,
        "region": o.region,
        "gpu": o.gpu,
        "gpu_count": o.gpu_count,
        "num_nodes": o.num_nodes,
        "spot": o.spot,
        "expected_cost": o.expected_cost,
        "hours": round(o.hours, 3),
        "usd_per_gpu_hour": o.usd_per_gpu_hour,
    }


def _eligible(quotes: Iterable[PriceQuote], c: PlanConstraints) -> list[PriceQuote]:
    clouds = {x.lower() for x in c.clouds} if c.clouds else None
    gpus = {resolve_gpu(g).name for g in c.gpu_types} if c.gpu_types else None
    return [
        q
        for q in quotes
        if (clouds is None or q.cloud in clouds)
        and (c.spot is None or q.spot == c.spot)
        and (gpus is None or q.gpu in gpus)
    ]


def plan_training(
    arch: ModelArchitecture,
    shape: TrainingShape,
    workload: Workload,
    prices: PriceTable,
    constraints: PlanConstraints | None = None,
    *,
    setup: SetupProfile | None = None,
    model_name: str | None = None,
    save_total_limit: int = 2,
    policy: BatchPolicy | None = None,
) -> Plan:
    """Rank every allowed (cloud, region, GPU, count, market) by expected total cost.

    Per choice the configuration is chosen (:func:`~vibeml.estimate.autoconfig.choose_config`): what
    ``policy`` leaves open of micro-batch, accumulation, checkpointing and strategy; ``policy`` defaults to
    the effective batch ``shape.batch_size × workload.gradient_accumulation_steps`` with everything else
    open. Method, sequence, LoRA, precision, optimizer and loss come from ``shape``. Per (cloud, GPU, count,
    market) only the cheapest region is kept.

    Raises:
        ConfigurationError: the constraints leave no quote to consider.
        ResourceError: nothing fits in memory (or finishes within ``max_hours``).
        BudgetExceededError: choices fit but none within ``max_cost``; ``context["cheapest_option"]``
            holds the cheapest one that fits.
    """
    c = constraints or PlanConstraints()
    quotes = _eligible(prices.quotes, c)
    if not quotes:
        raise ConfigurationError(
            "no price quote matches the constraints",
            {"clouds": c.clouds, "spot": c.spot, "gpu_types": c.gpu_types, "known_clouds": prices.clouds},
            "Widen the allowed clouds or GPUs, or allow both spot and on-demand capacity.",
        )
    if policy is None:
        policy = BatchPolicy(effective_batch=shape.batch_size * workload.gradient_accumulation_steps)
    if c.parallelism != "auto" and policy.strategy is None:
        policy = policy.model_copy(update={"strategy": c.parallelism})
    memo: dict[tuple[str, int], AutoConfig | NoConfig] = {}

    def configure(gpu: GPUSpec, count: int) -> AutoConfig | NoConfig:
        key = (gpu.name, count)
        if key not in memo:
            memo[key] = choose_config(
                arch,
                shape,
                workload,
                gpu,
                count,
                policy,
                unsupported=c.unsupported_strategies,
                headroom=c.memory_headroom,
                setup=setup,
            )
        return memo[key]

    best_per_combo: dict[tuple[str, str, int, int, bool], PlanOption] = {}
    rejected: list[RejectedOption] = []
    fitted_any = False
    fastest: PlanOption | None = None

    def layouts(q: PriceQuote, gpu: GPUSpec, counts: list[int]) -> list[tuple[int, int]]:
        """(GPUs per node, nodes) to try: every count on one machine; with ``max_nodes`` > 1, on a cloud that
        joins machines, also 2..max_nodes full nodes, when one full node of this GPU cannot hold the job (or
        a deadline may need more GPUs)."""
        out = [(n, 1) for n in counts]
        if c.max_nodes < 2 or GPUS_PER_NODE not in counts:
            return out
        one_node = configure(gpu, GPUS_PER_NODE)
        if c.max_hours is None and not (isinstance(one_node, NoConfig) and one_node.reason == "does_not_fit"):
            return out
        cloud = CLOUDS.get(q.cloud)
        if cloud is None or not cloud.multi_node:
            if isinstance(one_node, NoConfig):  # say why the layout that would hold it is not offered here
                rejected.append(
                    RejectedOption(
                        cloud=q.cloud,
                        region=q.region,
                        gpu=gpu.name,
                        gpu_count=GPUS_PER_NODE,
                        num_nodes=2,
                        spot=q.spot,
                        reason="multi_node_unsupported",
                        detail=f"one {GPUS_PER_NODE}× {gpu.name} node cannot hold the job, and "
                        f"{cloud.display_name if cloud else q.cloud} runs a job on one machine only",
                    )
                )
            return out
        return out + [(GPUS_PER_NODE, k) for k in range(2, c.max_nodes + 1)]

    for q in quotes:
        gpu = resolve_gpu(q.gpu)
        for count, nodes in layouts(q, gpu, sorted(set(q.gpu_counts) & set(c.gpu_counts))):
            cfg = configure(gpu, count * nodes)
            if isinstance(cfg, NoConfig):
                rejected.append(
                    RejectedOption(
                        cloud=q.cloud,
                        region=q.region,
                        gpu=gpu.name,
                        gpu_count=count,
                        num_nodes=nodes,
                        spot=q.spot,
                        reason=cfg.reason,
                        detail=cfg.detail,
                    )
                )
                continue
            s, mem = cfg.shape, cfg.memory
            fitted_any = True
            job = estimate_job(
                arch, s, gpu, cfg.workload, q, setup=setup, model_name=model_name, save_total_limit=save_total_limit
            )
            option = PlanOption(
                rank=0,
                cloud=q.cloud,
                region=q.region,
                gpu=gpu.name,
                gpu_count=count,
                num_nodes=nodes,
                spot=q.spot,
                parallelism=cfg.strategy,
                strategy=cfg.strategy,
                micro_batch=cfg.micro_batch,
                grad_accum=cfg.grad_accum,
                gradient_checkpointing=cfg.gradient_checkpointing,
                effective_batch=cfg.effective_batch,
                config_reason=cfg.reason,
                trials=cfg.trials,
                usd_per_gpu_hour=q.usd_per_gpu_hour,
                hourly_rate=job.cost.hourly_rate,
                hours=job.cost.estimated_duration_hours,
                train_hours=job.time.train_s / 3600,
                setup_hours=job.time.setup.total_s / 3600,
                tokens_per_s=job.throughput.tokens_per_s,
                memory_gib=mem.total_gib,
                capacity_gib=gpu.memory_gib,
                expected_cost=job.cost.expected_cost,
                min_cost=job.cost.min_cost,
                max_cost=job.cost.max_cost,
                live_price=q.live,
                instance=q.instance,
                offer_id=q.offer_id,
                estimate=job,
            )
            if fastest is None or option.hours < fastest.hours:
                fastest = option
            if c.max_hours is not None and option.hours > c.max_hours:
                rejected.append(
                    RejectedOption(
                        cloud=q.cloud,
                        region=q.region,
                        gpu=gpu.name,
                        gpu_count=count,
                        num_nodes=nodes,
                        spot=q.spot,
                        reason="too_slow",
                        detail=f"takes {option.hours:.2f} h, limit {c.max_hours:.2f} h",
                        expected_cost=option.expected_cost,
                    )
                )
                continue
            key = (q.cloud, gpu.name, count, nodes, q.spot)
            held = best_per_combo.get(key)
            if held is None or (option.expected_cost, not option.live_price) < (
                held.expected_cost,
                not held.live_price,
            ):
                best_per_combo[key] = option

    ranked = sorted(best_per_combo.values(), key=lambda o: (o.expected_cost, o.hours, o.hourly_rate, o.cloud, o.gpu))
    if not ranked:
        if not fitted_any:
            needs = [v.required_gib for v in memo.values() if isinstance(v, NoConfig) and v.required_gib is not None]
            other = sorted({v.detail for v in memo.values() if isinstance(v, NoConfig) and v.required_gib is None})
            raise ResourceError(
                "no GPU choice has enough memory for this training run",
                {
                    "least_required_gib": round(min(needs), 2) if needs else None,
                    "memory_headroom": c.memory_headroom,
                    "other_reasons": other[:5],
                    "model": model_name or arch.name,
                },
                "Use QLoRA or LoRA instead of full fine-tuning, enable gradient checkpointing, lower the "
                "batch size or max_seq_length, or allow more GPUs (FSDP)"
                + (
                    f" or more nodes (max_nodes {c.max_nodes} now; SkyPilot runs up to 4 nodes of 8 GPUs)."
                    if c.max_nodes < 4
                    else "."
                ),
            )
        raise ResourceError(
            f"no choice finishes within {c.max_hours} h",
            {"fastest": _option_summary(fastest) if fastest else None},
            "Raise --max-hours, reduce the steps/epochs, or allow faster GPUs or more of them.",
        )
    within: list[PlanOption] = []
    for o in ranked:
        if c.max_cost is not None and o.expected_cost > c.max_cost:
            rejected.append(
                RejectedOption(
                    cloud=o.cloud,
                    region=o.region,
                    gpu=o.gpu,
                    gpu_count=o.gpu_count,
                    num_nodes=o.num_nodes,
                    spot=o.spot,
                    reason="over_budget",
                    detail=f"expected ${o.expected_cost:.2f} > budget ${c.max_cost:.2f}",
                    expected_cost=o.expected_cost,
                )
            )
        else:
            within.append(o)
    if not within:
        best = ranked[0]
        assert c.max_cost is not None
        raise BudgetExceededError(
            f"the cheapest choice that fits costs ${best.expected_cost:.2f}, over the ${c.max_cost:.2f} budget",
            estimated_cost=best.expected_cost,
            max_cost=c.max_cost,
            context={"cheapest_option": _option_summary(best)},
            recovery_suggestion="Raise --max-cost, lower max_steps/epochs or max_seq_length, or allow spot "
            "capacity and more clouds.",
        )
    options = tuple(o.model_copy(update={"rank": i + 1}) for i, o in enumerate(within))
    return Plan(model=model_name or arch.name, options=options, rejected=tuple(rejected), constraints=c)


def plan_request(
    request: TrainingRequest,
    arch: ModelArchitecture,
    prices: PriceTable,
    constraints: PlanConstraints | None = None,
    *,
    dataset: DatasetStats | None = None,
    loss: LossImpl = "fused",
    setup: SetupProfile | None = None,
) -> Plan:
    """Plan a :class:`~vibeml.models.TrainingRequest`.

    Constraints default from the request: ``max_cost``; ``cloud`` (one allowed cloud); ``use_spot``
    (True: spot and on-demand both considered; False: on-demand only); ``gpu_type`` (only that GPU);
    ``gpu_count`` > 1 (only that count). Explicit ``constraints`` fields win where they are set. The batch
    policy comes from :func:`policy_from_request` (explicit hyperparameters are kept, the rest chosen).
    """
    c = constraints or PlanConstraints()
    updates: dict[str, object] = {}
    if c.max_cost is None and request.max_cost is not None:
        updates["max_cost"] = request.max_cost
    if c.clouds is None and request.cloud:
        updates["clouds"] = (request.cloud,)
    if c.spot is None and not request.use_spot:
        updates["spot"] = False
    if c.gpu_types is None and request.gpu_type:
        updates["gpu_types"] = (request.gpu_type,)
    if request.gpu_count > 1 and c.gpu_counts == PlanConstraints().gpu_counts:
        updates["gpu_counts"] = (request.gpu_count,)
    c = c.model_copy(update=updates) if updates else c
    shape = shape_from_request(request, loss=loss, gpu_count=1)
    workload = workload_from_request(request, dataset)
    return plan_training(
        arch,
        shape,
        workload,
        prices,
        c,
        setup=setup,
        model_name=request.model,
        save_total_limit=request.hyperparameters.save_total_limit,
        policy=policy_from_request(request),
    )


def policy_from_request(request: TrainingRequest) -> BatchPolicy:
    """The effective batch of a request (``effective_batch``, else batch_size × accumulation) and what it
    set explicitly: a batch size, an accumulation, a checkpointing choice or a strategy the request names is
    kept."""
    hp = request.hyperparameters
    given = hp.model_fields_set
    return BatchPolicy(
        effective_batch=hp.effective_batch or hp.batch_size * hp.gradient_accumulation_steps,
        micro_batch=hp.batch_size if "batch_size" in given else None,
        grad_accum=hp.gradient_accumulation_steps if "gradient_accumulation_steps" in given else None,
        gradient_checkpointing=hp.gradient_checkpointing,
        # --strategy ddp/fsdp: the layouts of several GPUs run it (one GPU is always "single")
        strategy=request.strategy if request.strategy in ("ddp", "fsdp") else None,
    )


def request_for_option(request: TrainingRequest, option: PlanOption) -> TrainingRequest:
    """The request as the chosen option runs it: its micro-batch, accumulation, checkpointing and GPU count
    (the effective batch, and every value the request set explicitly, are unchanged by construction)."""
    hp = request.hyperparameters.model_copy(
        update={
            "batch_size": option.micro_batch,
            "gradient_accumulation_steps": option.grad_accum,
            "gradient_checkpointing": option.gradient_checkpointing,
            "effective_batch": option.effective_batch,  # a resume (every field read back as set) keeps it
        }
    )
    return request.model_copy(update={"hyperparameters": hp, "gpu_count": option.gpu_count})


def request_for_processes(request: TrainingRequest, processes: int) -> TrainingRequest:
    """The request as ``processes`` trainer processes run it without a plan (the local backend's
    ``--gpu-count N``): the effective batch (``effective_batch``, else ``batch_size × accumulation``, as the
    planner reads it) is split over the processes, so that ``batch_size × accumulation × processes`` trains
    exactly it. A batch size or accumulation the request set explicitly is kept (as the planner keeps it);
    of the splits left, the largest micro-batch not above the request's (no process needs more memory than
    one did) with the fewest accumulation steps wins. One process without ``effective_batch``: the request
    unchanged.

    Raises:
        ConfigurationError: the effective batch does not split evenly over ``processes`` (with what the
            request fixed); the effective batch is never changed silently.
    """
    hp = request.hyperparameters
    if processes <= 1 and hp.effective_batch is None:
        return request
    policy = policy_from_request(request)
    splits = batch_splits(policy, processes)
    if not splits:
        fixed = {
            k: v
            for k, v in (("batch_size", policy.micro_batch), ("gradient_accumulation_steps", policy.grad_accum))
            if v is not None
        }
        eb = policy.effective_batch
        per = eb // processes
        if eb % processes:
            why = f"the effective batch of {eb} sequences does not split evenly over {processes} processes"
            near = sorted({max(1, per) * processes, (per + 1) * processes})
            options = " or ".join(map(str, near))
            fix = f"Give an effective batch that is a multiple of {processes} (--effective-batch {options})"
        else:
            pinned = " × ".join(f"{k} {v}" for k, v in fixed.items())
            keep = (policy.micro_batch or 1) * (policy.grad_accum or 1) * processes
            why = (
                f"the effective batch of {eb} sequences is {per} per process over {processes} processes, "
                f"which {pinned} (set in the request) cannot make"
            )
            fix = (
                "Leave batch_size/gradient_accumulation_steps unset (VibeML splits the batch), or set "
                f"--effective-batch {keep} to keep {pinned} per process"
            )
        raise ConfigurationError(
            why,
            {"effective_batch": eb, "processes": processes, **fixed},
            fix + f", or use --gpu-count {_a_divisor(eb, processes)}.",
        )
    under = [(m, a) for m, a in splits if m <= hp.batch_size]
    m, a = max(under) if under else min(splits)
    # effective_batch written down: a resumed copy of this request (read back with every field set) splits
    # the same batch again rather than taking batch_size × accumulation for it
    new = hp.model_copy(
        update={"batch_size": m, "gradient_accumulation_steps": a, "effective_batch": policy.effective_batch}
    )
    # All three now count as set (model_copy marks them): a revalidation (TrainerConfig) keeps the split rather
    # than deriving a one-GPU split of effective_batch again.
    return request.model_copy(update={"hyperparameters": new})


def _a_divisor(n: int, below: int) -> int:
    """The largest divisor of ``n`` under ``below`` (at least 1)."""
    return max(d for d in range(1, max(1, below)) if n % d == 0) if below > 1 else 1


def unsupported_strategies(request: TrainingRequest, backend: object) -> dict[str, str]:
    """Strategy → why the request's workflow or ``backend`` (a :class:`~vibeml.backends.base.Backend`)
    cannot run it; the planner never plans those."""
    from vibeml.workflows.registry import get_workflow

    workflow = get_workflow(request.workflow)
    out: dict[str, str] = {}
    for strategy in ("ddp", "fsdp"):
        if strategy not in workflow.strategies:
            out[strategy] = f"the {workflow.name} workflow does not run {strategy}"
    multi = getattr(getattr(backend, "capabilities", None), "multi_gpu", None)
    if multi is not None and not multi.supported:
        name = getattr(backend, "name", "this")
        for strategy in ("ddp", "fsdp"):
            out.setdefault(strategy, f"the {name} backend runs one GPU: {multi.reason}".rstrip(": "))
    return out
