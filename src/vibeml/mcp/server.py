"""VibeML's MCP server: each tool validates its arguments, makes one service call, returns a model.

The service is synchronous: every tool runs its call in a worker thread (``asyncio.to_thread``) so the
server keeps answering. Tools return the service's typed reports (``vibeml.reports``) as they are, so
each tool's output schema is that model's.

Nothing but protocol messages goes to stdout (logs go to stderr). Errors become tool errors whose text
carries the message, the facts and the recovery suggestion, so an assistant can act on them. No tool
reads, returns or accepts stored credentials.

Start-up: importing this module loads FastMCP and the models the tool schemas are built from, nothing
else. The service (`vibeml.client`, with the backends and the workflow templates behind it) is made on
the first tool call that needs it, once per server. Each tool's description is handed to FastMCP
directly, so FastMCP never loads its docstring parser (griffe, about 0.15 s) to read it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, ParamSpec, Protocol, TypeVar

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from mcp_types import ElicitRequest, ElicitRequestFormParams, InputRequiredResult, ToolAnnotations
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, Field

from vibeml.estimate.report import EstimateQuery, PlanQuery
from vibeml.exceptions import ConfigurationError, ConfirmationError, VibeMLError
from vibeml.mcp.confirm import Confirmer, cleanup_fingerprint, cleanup_summary, is_paid, plan_summary
from vibeml.models import CostEstimate, DatasetFormat, JobRecord
from vibeml.reports import (
    EstimateReport,
    GpuRecommendation,
    OffersReport,
    OrphanedResource,
    PlanReport,
    ReconcileReport,
    SpendingReport,
)
from vibeml.results.service import Generation
from vibeml.settings import Settings
from vibeml.validation.dataset import DatasetReport
from vibeml.validation.model import ModelInfo

if TYPE_CHECKING:
    from vibeml.client import LaunchPreparation, VibeML

__all__ = ["create_server", "main"]

log = logging.getLogger("vibeml.mcp")

P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
VibeML fine-tunes open LLMs (LoRA or full) on the user's data, locally or on the cheapest cloud GPU that
fits, and never spends past a budget. Typical flow: validate/estimate first (estimate_training_cost,
plan_training, recommend_gpu), then launch_training with an explicit max_cost (dry_run=true shows the
plan and the cost without starting anything). A paid launch starts only on the person's explicit yes: the
server asks them (elicitation) where the client can, else show them the dry run's plan and cost and call
again with its confirmation_token once they agree. Then poll get_job_status (step, loss, ETA, cost so far),
read get_job_logs, and stop_job when asked. launch_training(demo=true) trains the bundled tiny model
locally in about a minute. Errors explain what to do next in `recovery_suggestion`."""


class LaunchResult(BaseModel):
    """A launched job, or (dry run) what would be launched and what it would cost."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool
    job: JobRecord | None = None
    estimate: CostEstimate
    plan: PlanReport | None = None
    warnings: list[str] = Field(default_factory=list)
    confirmation: str | None = Field(None, description="Paid dry run: the plan and cost to show the person.")
    confirmation_token: str | None = Field(
        None, description="Paid dry run: pass it back to launch this exact plan once the person says yes."
    )
    next_step: str


class LaunchConfirmation(BaseModel):
    """The person's answer to "start this paid job?" (an elicitation form)."""

    confirm: bool = Field(title="Start this paid job", description="Yes starts it and spends money.")


class LogTail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    lines: list[str]


class WorkflowInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    method: str
    description: str


def _tool_error(exc: VibeMLError) -> ToolError:
    payload = exc.to_dict()
    text = f"{payload['error']}: {payload['message']}"
    if payload["recovery_suggestion"]:
        text += f"\nWhat to do: {payload['recovery_suggestion']}"
    if payload["context"]:
        text += "\nContext: " + json.dumps(payload["context"], default=str)
    return ToolError(text)


def _guard(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The MCP error boundary: VibeMLError → a tool error an assistant can act on."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except VibeMLError as exc:
            raise _tool_error(exc) from None
        except ToolError:
            raise
        except Exception as exc:  # a bug: say so, keep the server alive
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(f"internal error in {fn.__name__}: {type(exc).__name__}: {exc}") from None

    return wrapper


class _LazyService:
    """The server's one service, made by ``factory`` on the first call (once, also when tools race)."""

    def __init__(self, factory: Callable[[], VibeML]) -> None:
        self._factory = factory
        self._service: VibeML | None = None
        self._lock = threading.Lock()

    def __call__(self) -> VibeML:
        service = self._service
        if service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._factory()
                service = self._service
        return service


class _Register(Protocol):
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...


def _tool_registrar(mcp: FastMCP) -> Callable[..., _Register]:
    """``@tool(title=..., read_only=..., ...)``: register a tool behind the error boundary, its docstring as
    the description, with its MCP annotations (what a client may do without asking: read-only tools change
    nothing; destructive ones end or delete something; open-world ones reach clouds or the hub).

    FastMCP would parse a docstring with griffe, imported for it (about 0.15 s at start-up, for
    sections our docstrings do not have); the text is passed as it is instead, and the registered
    wrapper carries none.
    """

    def tool(
        *, title: str, read_only: bool, open_world: bool, destructive: bool = False, idempotent: bool | None = None
    ) -> _Register:
        annotations = ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=destructive and not read_only,
            idempotent_hint=read_only if idempotent is None else idempotent,
            open_world_hint=open_world,
        )

        def register(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            guarded = _guard(fn)
            description = inspect.getdoc(fn)
            guarded.__doc__ = None
            mcp.tool(guarded, title=title, description=description, annotations=annotations)
            return guarded

        return register

    return tool


#: The key of the one elicitation a paid launch (or a destroying cleanup) embeds in an ``InputRequiredResult``
#: (MCP 2026-07-28).
_CONFIRM_KEYS = {"launch": "vibeml_confirm_launch", "cleanup": "vibeml_confirm_cleanup"}


class CleanupConfirmation(BaseModel):
    """The person's answer to "destroy these leftover machines?" (an elicitation form)."""

    confirm: bool = Field(title="Destroy them", description="Yes destroys the listed machines (and their disks).")


class CleanupResult(BaseModel):
    """What cleanup would destroy (``find_orphans``) or destroyed (``cleanup_orphans``)."""

    model_config = ConfigDict(extra="forbid")

    report: ReconcileReport
    confirmation: str | None = Field(None, description="What would be destroyed, to show the person.")
    confirmation_token: str | None = Field(
        None, description="Pass it to cleanup_orphans once the person says yes to destroying exactly these."
    )
    next_step: str


def _client_can_elicit(ctx: Context) -> bool:
    try:
        caps = ctx.session.client_capabilities
    except RuntimeError:  # no live session (not over MCP)
        return False
    return caps is not None and caps.elicitation is not None


def _is_modern(ctx: Context) -> bool:
    """MCP 2026-07-28 has no server-to-client requests: a question rides on an ``InputRequiredResult``."""
    rc = ctx.request_context
    return rc is not None and rc.protocol_version in MODERN_PROTOCOL_VERSIONS


def _declined(kind: str, action: str) -> ConfirmationError:
    what = "launched" if kind == "launch" else "destroyed"
    return ConfirmationError(
        f"the person did not confirm the {'paid launch' if kind == 'launch' else 'cleanup'} ({action}): "
        f"nothing was {what}",
        {"answer": action},
        "Nothing to undo. Ask what they want to change (a cheaper GPU, fewer steps, a lower max_cost), or stop."
        if kind == "launch"
        else "Nothing to undo. The machines stay listed by find_orphans (and keep billing) until destroyed.",
    )


def _no_elicitation(kind: str = "launch") -> ConfirmationError:
    if kind == "cleanup":
        return ConfirmationError(
            "destroying machines needs the person's explicit yes, and this client cannot ask them (no "
            "elicitation): nothing was destroyed",
            {"needs": "confirmation_token"},
            "Call find_orphans, show the person its `confirmation` (what would be destroyed), and only if they "
            "say yes call cleanup_orphans again with confirmation_token set to the token find_orphans returned.",
        )
    return ConfirmationError(
        "a paid launch needs the person's explicit yes, and this client cannot ask them (no elicitation): "
        "nothing was launched",
        {"needs": "confirmation_token"},
        "Call launch_training with the same arguments and dry_run=true, show the person the returned "
        "`confirmation` (GPU, cloud, expected and maximum cost, cap), and only if they say yes call again with "
        "the same arguments, dry_run=false and confirmation_token set to the token the dry run returned.",
    )


async def _ask_yes(
    ctx: Context, kind: str, message: str, form: type[BaseModel], issue: Callable[[], str]
) -> str | InputRequiredResult:
    """Ask the person ``message``; their yes as a token (``issue``: bound to the plan, redeemed by the action).

    On MCP 2026-07-28 the question is an ``InputRequiredResult`` the client answers by calling again (the
    token rides in ``request_state``); on earlier connections ``ctx.elicit`` asks in place. ``form`` has one
    boolean field, ``confirm``.

    Raises:
        ConfirmationError: The client cannot ask, or the person declined, cancelled or answered no.
    """
    key = _CONFIRM_KEYS[kind]
    if _is_modern(ctx):
        answers = ctx.input_responses
        if answers is not None and key in answers and ctx.request_state:
            answer = answers[key]
            action = getattr(answer, "action", "cancel")
            content = getattr(answer, "content", None) or {}
            if action != "accept" or content.get("confirm") is not True:
                raise _declined(kind, action if action != "accept" else "answered no")
            return ctx.request_state
        if not _client_can_elicit(ctx):
            raise _no_elicitation(kind)
        schema = form.model_json_schema()
        schema.pop("description", None)
        schema.pop("title", None)
        ask = ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))
        return InputRequiredResult(input_requests={key: ask}, request_state=issue())
    if not _client_can_elicit(ctx):
        raise _no_elicitation(kind)
    token = issue()
    result = await ctx.elicit(message, form)
    if result.action != "accept":
        raise _declined(kind, result.action)
    if getattr(result.data, "confirm", False) is not True:
        raise _declined(kind, "answered no")
    return token


async def _follow(ctx: Context, service: VibeML, record: JobRecord) -> JobRecord:
    """Follow the job to its end (``vibeml.jobs.follow``), each new step an MCP progress notification;
    cancelling the call (``notifications/cancelled``) stops the job."""
    from vibeml.jobs.follow import follow_job, progress_message

    async def report(job: JobRecord) -> None:
        p = job.progress
        await ctx.report_progress(
            progress=p.step if p else 0, total=p.max_steps if p else None, message=progress_message(job)
        )

    return await follow_job(service, record, report)


def _after_follow(record: JobRecord) -> str:
    from vibeml.jobs.follow import FOLLOW_LIMIT_SECONDS

    job = repr(record.job_id)
    if record.status.value == "completed":
        out = record.output_dir or (record.progress.output_dir if record.progress else None)
        return f"Done: the result is in {out}." if out else f"Done (get_job_status(job_id={job}) for the result)."
    if record.status.is_terminal:
        return f"The job ended {record.status.value}: {record.error or 'see its log'} (get_job_logs(job_id={job}))."
    return f"Still running after {int(FOLLOW_LIMIT_SECONDS)} s of following: poll get_job_status(job_id={job})."


def create_server(
    service_factory: Callable[[], VibeML] | None = None,
    *,
    settings: Settings | None = None,
    confirmer: Confirmer | None = None,
) -> FastMCP:
    """Build the server. Its settings are read from the environment once, here (or given); its one service
    is made over them on the first call that needs it (``service_factory`` instead: tests pass their own).
    ``confirmer`` issues and redeems the confirmation tokens of paid launches (one with a fresh secret when
    omitted; tests pass one with their own clock).

    Raises:
        ConfigurationError: A setting's value is invalid (the error names the variable).
    """
    if service_factory is None:
        current = settings or Settings()

        def factory() -> VibeML:
            from vibeml.client import VibeML

            return VibeML(current)
    else:
        factory = service_factory
    mcp = FastMCP("vibeml", instructions=INSTRUCTIONS)
    svc = _LazyService(factory)
    tool = _tool_registrar(mcp)
    confirm = confirmer or Confirmer()

    @tool(title="Launch a fine-tune (paid runs ask first)", read_only=False, open_world=True)
    async def launch_training(
        ctx: Context,
        max_cost: Annotated[float, Field(gt=0, le=1_000_000, description="Hard budget cap in USD (required).")],
        model: Annotated[str | None, Field(description="Hub id or local model directory.")] = None,
        dataset: Annotated[str | None, Field(description="Hub dataset id or local data file.")] = None,
        demo: Annotated[bool, Field(description="Train the bundled tiny model locally instead.")] = False,
        dry_run: Annotated[bool, Field(description="Return the plan and estimate; start nothing.")] = False,
        workflow: str = "trl-lora",
        backend: str = "local",
        gpu_type: str | None = None,
        gpu_count: Annotated[int, Field(ge=1, le=512)] = 1,
        cloud: str | None = None,
        use_spot: bool = False,
        max_steps: Annotated[int | None, Field(ge=1)] = None,
        num_epochs: Annotated[float | None, Field(gt=0)] = None,
        learning_rate: Annotated[float | None, Field(gt=0, le=1)] = None,
        batch_size: Annotated[int | None, Field(ge=1)] = None,
        max_seq_length: Annotated[int | None, Field(ge=8)] = None,
        lora_r: Annotated[int | None, Field(ge=1)] = None,
        dataset_format: DatasetFormat = "auto",
        column_mapping: Annotated[
            dict[str, str] | None,
            Field(
                description="Rename dataset columns first, {existing: new}, e.g. "
                "{'question': 'instruction', 'answer': 'output'} (see validate_dataset)."
            ),
        ] = None,
        eval_split: Annotated[float | None, Field(gt=0, lt=1, description="Held-out fraction for eval loss.")] = None,
        eval_dataset: Annotated[str | None, Field(description="A separate eval dataset (hub id or file).")] = None,
        eval_steps: Annotated[int | None, Field(ge=1, description="Evaluate every N steps.")] = None,
        keep_best: Annotated[bool, Field(description="Deliver the checkpoint with the lowest eval loss.")] = False,
        report_to: Annotated[
            Literal["none", "tensorboard", "wandb", "mlflow"], Field(description="Also log metrics there.")
        ] = "none",
        confirmation_token: Annotated[
            str | None,
            Field(
                max_length=512,
                description="From a dry run of exactly these arguments, once the person said yes to its plan.",
            ),
        ] = None,
        wait: Annotated[
            bool,
            Field(
                description="Follow the job until it ends, reporting progress (step, loss, cost); cancelling "
                "the call stops the job."
            ),
        ] = False,
    ) -> LaunchResult:
        """Fine-tune a model. Validates, estimates, refuses past max_cost or the monthly budget, then starts
        the job and returns at once (poll get_job_status), or with wait=true follows it to its end with
        progress notifications (cancelling the call stops the job). dry_run=true starts nothing.
        A paid run starts only on the person's yes: the server asks them where the client supports it,
        else pass the confirmation_token of a dry run whose plan and cost they accepted."""
        fields: dict[str, Any] = {
            "workflow": workflow,
            "backend": backend,
            "gpu_type": gpu_type,
            "gpu_count": gpu_count,
            "cloud": cloud,
            "use_spot": use_spot,
            "max_cost": max_cost,
            "dataset_format": dataset_format,
            "max_steps": max_steps,
            "num_epochs": num_epochs,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_seq_length": max_seq_length,
            "lora_r": lora_r,
            "column_mapping": column_mapping,
            "eval_split": eval_split,
            "eval_dataset": eval_dataset,
            "eval_steps": eval_steps,
            "keep_best": keep_best or None,
            "report_to": None if report_to == "none" else report_to,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        service = svc()

        request = await asyncio.to_thread(lambda: service.request_from(model, dataset, demo=demo, **fields))
        if dry_run:  # the same preparation as the launch: it raises what the launch would
            prep = await asyncio.to_thread(service.prepare_launch, request)
            preview = prep.preview()
            paid = is_paid(prep)
            return LaunchResult(
                dry_run=True,
                estimate=preview.estimate,
                plan=preview.plan,
                warnings=list(preview.budget.warnings),
                confirmation=plan_summary(prep) if paid else None,
                confirmation_token=confirm.issue(prep) if paid else None,
                next_step="Show the person `confirmation` (the plan and its cost). Only if they say yes, call "
                "again with the same arguments, dry_run=false and this confirmation_token (valid "
                f"{int(confirm.ttl_seconds // 60)} minutes, once)."
                if paid
                else "Free local run: call again with dry_run=false to start it.",
            )
        token = confirmation_token
        if token is None and not service.backends.get(request.backend).capabilities.free:
            prep = await asyncio.to_thread(service.prepare_launch, request)
            if is_paid(prep):
                asked = await _ask_yes(
                    ctx, "launch", plan_summary(prep), LaunchConfirmation, lambda: confirm.issue(prep)
                )
                if isinstance(asked, InputRequiredResult):
                    return asked  # type: ignore[return-value]  # FastMCP sends it as the question (SEP-2322)
                token = asked

        def gate(prep: LaunchPreparation) -> None:  # the plan about to start: exactly the one said yes to
            if is_paid(prep):
                if token is None:
                    raise _no_elicitation()
                confirm.redeem(token, prep)

        record = await asyncio.to_thread(service.launch, request, gate)
        warnings = record.warnings
        next_step = f"Poll get_job_status(job_id={record.job_id!r})."
        if wait:
            record = await _follow(ctx, service, record)
            next_step = _after_follow(record)
        return LaunchResult(
            dry_run=False,
            job=record,
            estimate=record.estimate or await asyncio.to_thread(service.estimate, request),
            warnings=warnings,
            next_step=next_step,
        )

    @tool(title="Estimate one fine-tune's memory, time and cost", read_only=True, open_world=True)
    async def estimate_training_cost(query: EstimateQuery) -> EstimateReport:
        """GPU memory (what nvidia-smi would show), fit, tokens/s, time and total cost of one fine-tune on
        one GPU. loss='fused' models VibeML's trainer; 'standard' a plain transformers loop."""
        return await asyncio.to_thread(svc().estimate_report, query)

    @tool(title="Plan: every GPU choice ranked by total cost", read_only=True, open_world=True)
    async def plan_training(query: PlanQuery) -> PlanReport:
        """Every (cloud, GPU, count, spot/on-demand) choice that fits, ranked by expected TOTAL job cost."""
        return await asyncio.to_thread(svc().plan_report, query)

    @tool(title="Recommend the cheapest GPU that fits", read_only=True, open_world=True)
    async def recommend_gpu(
        model: Annotated[str, Field(min_length=1, max_length=1024)], use_quantization: bool = False
    ) -> GpuRecommendation:
        """The cheapest GPU type that fits a LoRA (QLoRA with use_quantization) fine-tune of the model."""
        return await asyncio.to_thread(svc().recommend_gpu, model, use_quantization)

    @tool(title="Search live Vast.ai GPU offers", read_only=True, open_world=True)
    async def search_gpu_offers(
        query: Annotated[
            str, Field(max_length=2000, description="Vast query, e.g. 'gpu_name=RTX_4090 num_gpus=1'.")
        ] = "",
        type: Literal["on-demand", "bid", "reserved"] = "on-demand",
        order: Annotated[str, Field(max_length=200)] = "dph_total",
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> OffersReport:
        """Live Vast.ai GPU offers (needs a stored Vast API key)."""
        return await asyncio.to_thread(svc().search_offers, query, type, order, limit)

    @tool(title="List training jobs", read_only=True, open_world=True)
    async def list_jobs(limit: Annotated[int, Field(ge=1, le=500)] = 20) -> list[JobRecord]:
        """Jobs, newest first, with status, step, loss and cost so far."""
        return await asyncio.to_thread(svc().list_jobs, limit)

    @tool(title="Get a job's status", read_only=True, open_world=True)
    async def get_job_status(job_id: Annotated[str, Field(min_length=1, max_length=64)]) -> JobRecord:
        """One job: status, step/max_steps, loss (and first loss), eval loss and perplexity, ETA, cost so far,
        error if any."""
        return await asyncio.to_thread(svc().get_status, job_id)

    @tool(title="Read a job's log", read_only=True, open_world=True)
    async def get_job_logs(
        job_id: Annotated[str, Field(min_length=1, max_length=64)], tail: Annotated[int, Field(ge=1, le=5000)] = 100
    ) -> LogTail:
        """The last lines of a job's training log."""
        service = svc()
        return LogTail(job_id=job_id, lines=await asyncio.to_thread(lambda: list(service.logs(job_id, tail=tail))))

    @tool(title="Ask a finished job's model", read_only=True, open_world=True)
    async def generate(
        job_id: Annotated[str, Field(min_length=1, max_length=64)],
        prompt: Annotated[str, Field(min_length=1, max_length=32_000, description="The user's message.")],
        max_new_tokens: Annotated[int, Field(ge=1, le=4096)] = 256,
    ) -> Generation:
        """Answer one prompt with a completed job's fine-tuned model (its base model with the adapter, loaded
        on this machine, through the model's chat template; greedy). Loading may download the base model."""
        return await asyncio.to_thread(svc().generate, job_id, prompt, max_new_tokens=max_new_tokens)

    @tool(title="Stop a job", read_only=False, destructive=True, idempotent=True, open_world=True)
    async def stop_job(job_id: Annotated[str, Field(min_length=1, max_length=64)]) -> JobRecord:
        """Stop a job (it checkpoints first). Stopping a finished job changes nothing."""
        return await asyncio.to_thread(svc().stop, job_id)

    @tool(title="Find VibeML's leftover cloud machines", read_only=True, open_world=True)
    async def find_orphans(
        backend: Annotated[str | None, Field(max_length=64, description="Only this backend (e.g. vast).")] = None,
    ) -> CleanupResult:
        """Paid machines VibeML rented that no live job uses (they may still bill), and others' machines on
        the same account (never touched). Returns what cleanup_orphans would destroy and, if anything, a
        confirmation_token for exactly that set."""
        service = svc()
        await asyncio.to_thread(service.list_jobs, 10_000)  # refreshing settles launches killed half-way
        seen: list[OrphanedResource] = []

        def look(found: list[OrphanedResource]) -> bool:
            seen.extend(found)
            return False  # list only

        report = await asyncio.to_thread(service.reconcile, True, backend, look)
        if not seen:
            return CleanupResult(report=report, next_step="Nothing of VibeML's is left: nothing to clean up.")
        return CleanupResult(
            report=report,
            confirmation=cleanup_summary(seen),
            confirmation_token=confirm.issue_for(cleanup_fingerprint(seen), "cleanup"),
            next_step="Show the person `confirmation`. Only if they say yes, call cleanup_orphans with the same "
            f"backend and this confirmation_token (valid {int(confirm.ttl_seconds // 60)} minutes, once).",
        )

    @tool(
        title="Destroy VibeML's leftover cloud machines (asks first)",
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
    )
    async def cleanup_orphans(
        ctx: Context,
        backend: Annotated[str | None, Field(max_length=64, description="Only this backend (e.g. vast).")] = None,
        confirmation_token: Annotated[
            str | None, Field(max_length=512, description="From find_orphans, once the person said yes to its list.")
        ] = None,
    ) -> CleanupResult:
        """Destroy the machines find_orphans lists as VibeML's own (never anyone else's), only on the person's
        yes: the server asks them where the client supports it, else pass find_orphans' confirmation_token."""
        service = svc()
        await asyncio.to_thread(service.list_jobs, 10_000)  # refreshing settles launches killed half-way
        token = confirmation_token
        if token is None:
            seen: list[OrphanedResource] = []

            def look(found: list[OrphanedResource]) -> bool:
                seen.extend(found)
                return False

            preview = await asyncio.to_thread(service.reconcile, True, backend, look)
            if not seen:
                return CleanupResult(report=preview, next_step="Nothing of VibeML's is left: nothing was destroyed.")
            asked = await _ask_yes(
                ctx,
                "cleanup",
                cleanup_summary(seen),
                CleanupConfirmation,
                lambda: confirm.issue_for(cleanup_fingerprint(seen), "cleanup"),
            )
            if isinstance(asked, InputRequiredResult):
                return asked  # type: ignore[return-value]  # FastMCP sends it as the question (SEP-2322)
            token = asked

        def gate(found: list[OrphanedResource]) -> bool:  # exactly the set said yes to
            if token is None:
                raise _no_elicitation("cleanup")
            confirm.redeem_for(token, cleanup_fingerprint(found), "cleanup")
            return True

        report = await asyncio.to_thread(service.reconcile, True, backend, gate)
        done = [r.id for r in report.orphans if r.destroyed]
        return CleanupResult(
            report=report,
            next_step=f"Destroyed {len(done)} machine(s)." if done else "Nothing of VibeML's was left to destroy.",
        )

    @tool(title="List training workflows", read_only=True, open_world=False)
    async def list_workflows() -> list[WorkflowInfo]:
        """Training workflows (e.g. trl-lora, full)."""
        from vibeml.workflows import list_workflows as _lw

        return [WorkflowInfo(name=w.name, method=w.method, description=w.description) for w in _lw()]

    @tool(title="Budget and spending", read_only=True, open_world=False)
    async def get_spending(
        month: Annotated[str | None, Field(description="YYYY-MM (default this month) or 'all'.")] = None,
    ) -> SpendingReport:
        """The monthly budget, what is spent and committed, and the per-job ledger."""
        return await asyncio.to_thread(svc().spending, month)

    @tool(title="Check a model", read_only=True, open_world=True)
    async def validate_model(
        model: Annotated[str, Field(min_length=1, max_length=1024, description="Hub id (org/name) or local dir.")],
    ) -> ModelInfo:
        """Check a model before training: exists, gated/private and whether the stored Hugging Face token may
        download it, parameter count and size (safetensors), architecture and licence."""
        return await asyncio.to_thread(svc().validate_model, model)

    @tool(title="Check a dataset", read_only=True, open_world=True)
    async def validate_dataset(
        dataset: Annotated[str, Field(min_length=1, max_length=4096, description="Hub dataset id or local file.")],
        model: Annotated[
            str | None, Field(max_length=1024, description="Count tokens with this model's tokenizer.")
        ] = None,
        dataset_format: DatasetFormat = "auto",
        column_mapping: Annotated[
            dict[str, str] | None, Field(description="Rename columns first, e.g. {'question': 'instruction'}.")
        ] = None,
        max_seq_length: Annotated[int | None, Field(ge=8, le=1_048_576)] = None,
    ) -> DatasetReport:
        """Check a dataset the way the trainer reads it: format (alpaca, messages, sharegpt,
        prompt_completion, text), rows, malformed rows, and token statistics (the model's tokenizer when
        given, else a characters/4 estimate). Names the columns found and expected when nothing matches."""
        service = svc()
        return await asyncio.to_thread(
            lambda: service.validate_dataset(
                dataset, model, dataset_format, column_mapping=column_mapping, max_seq_length=max_seq_length
            )
        )

    _register_resources_and_prompts(mcp, svc)
    return mcp


#: How many lines the log resource returns, and how many trainer events the events resource returns.
RESOURCE_TAIL = 200


def _resource_error(exc: VibeMLError) -> ResourceError:
    """A user's error (an unknown job id): its text for the assistant, logged as information, not a crash."""
    return ResourceError(str(_tool_error(exc)), log_level=logging.INFO)


def _register_resources_and_prompts(mcp: FastMCP, svc: _LazyService) -> None:
    """Job logs and events as resource templates, and the ``fine_tune_safely`` prompt. Their descriptions are
    passed as they are, so registering them loads nothing (FastMCP would parse a prompt's docstring with
    griffe)."""

    async def job_log(job_id: str) -> str:
        service = svc()
        try:
            lines = await asyncio.to_thread(lambda: list(service.logs(job_id, tail=RESOURCE_TAIL)))
        except VibeMLError as exc:
            raise _resource_error(exc) from None
        return "\n".join(lines)

    mcp.resource(
        "vibeml://jobs/{job_id}/log",
        name="job_log",
        title="A job's training log",
        description=f"The last {RESOURCE_TAIL} lines of a job's training log (id or unique prefix).",
        mime_type="text/plain",
    )(job_log)

    async def job_events(job_id: str) -> str:
        service = svc()

        def read() -> dict[str, Any]:
            from vibeml.trainer.events import dump_event, read_events

            record = service.get_status(job_id)
            trainer = [json.loads(dump_event(e)) for e in read_events(service.job_dir(record.job_id) / "events.jsonl")]
            return {
                "job_id": record.job_id,
                "status": record.status.value,
                "progress": record.progress.model_dump(mode="json") if record.progress else None,
                "cost_so_far": record.cost_so_far,
                "lifecycle": service.store.events(record.job_id),
                "trainer_events": trainer[-RESOURCE_TAIL:],
            }

        try:
            return json.dumps(await asyncio.to_thread(read), default=str)
        except VibeMLError as exc:
            raise _resource_error(exc) from None

    mcp.resource(
        "vibeml://jobs/{job_id}/events",
        name="job_events",
        title="A job's event stream",
        description="A job's status and progress, its lifecycle events (launch, stop, ...) and the last "
        f"{RESOURCE_TAIL} trainer events (steps, losses, checkpoints) recorded on this machine, as JSON.",
        mime_type="application/json",
    )(job_events)

    def fine_tune_safely(model: str, dataset: str, max_cost: str = "5") -> str:
        return FINE_TUNE_SAFELY.format(model=model, dataset=dataset, max_cost=max_cost)

    mcp.prompt(
        fine_tune_safely,
        name="fine_tune_safely",
        title="Fine-tune safely: estimate, plan, confirm, launch, follow",
        description="Walks an assistant through a fine-tune that spends money only with the person's yes.",
    )


FINE_TUNE_SAFELY = """\
Fine-tune {model!r} on {dataset!r} with VibeML, spending at most ${max_cost} and only with my explicit yes.

1. Check: validate_model(model={model!r}) and validate_dataset(dataset={dataset!r}, model={model!r}). If \
either reports a problem, tell me what it says and how to fix it; stop there.
2. Estimate: estimate_training_cost for this model and dataset (rows and tokens from validate_dataset). Tell me \
the GPU memory needed, the time, and the expected cost.
3. Plan: plan_training and show me the cheapest few choices (cloud, GPU, spot or on-demand, expected total cost).
4. Confirm: call launch_training with model={model!r}, dataset={dataset!r}, max_cost={max_cost}, the chosen \
backend and dry_run=true. Show me its `confirmation` (the plan, the expected and maximum cost, the cap) and ask \
me whether to start. Do not launch until I say yes. A free local run needs no confirmation.
5. Launch: on my yes, call launch_training again with the same arguments and dry_run=false, passing the dry \
run's confirmation_token (if the server asks me itself, let it). Never raise max_cost without asking me.
6. Follow: pass wait=true to follow the job with progress, or poll get_job_status(job_id) (step, loss, ETA, \
cost so far); read the resource vibeml://jobs/<job_id>/log or get_job_logs when something looks wrong, and \
stop_job if I ask. When it completes, tell me the final loss, the cost and where the result is.
"""


def parse_http_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``[::1]:PORT``) → (host, port), checked before anything starts.

    Raises:
        ConfigurationError: No port, a port that is not a number from 1 to 65535, or a malformed host.
    """
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    port = int(port_text) if sep and port_text.isdigit() and len(port_text) <= 5 else 0
    if not 1 <= port <= 65535 or not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", host):
        raise ConfigurationError(
            f"--http takes HOST:PORT with a port from 1 to 65535, not {text[:80]!r}",
            {"http": text[:80]},
            "Example: vibeml mcp --http 127.0.0.1:8765 (or :8765 for localhost).",
        )
    return host, port


def _check_can_listen(host: str, port: int) -> None:
    """Bind once to say "address in use" or "unknown host" as an error, not as a server traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve MCP on {host}:{port}: {exc.strerror or exc}",
            {"host": host, "port": port},
            "Choose a free port (or stop what is using it), and a host name or address of this machine.",
        ) from None


def main(http: str | None = None, settings: Settings | None = None) -> None:
    """Run the server: stdio (default) or HTTP on ``host:port``, over ``settings`` (read from the
    environment, once, when not given).

    Raises:
        ConfigurationError: A bad address, or a setting's value is invalid (naming the variable).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if http:
        host, port = parse_http_address(http)
        server = create_server(settings=settings)
        _check_can_listen(host, port)
        server.run(transport="http", host=host, port=port, show_banner=False)
    else:
        create_server(settings=settings).run(transport="stdio", show_banner=False)
