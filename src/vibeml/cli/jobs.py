"""`vibeml launch / jobs / status / logs / stop`: thin wrappers over the service."""

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vibeml.cli._options import (
    BatchSizeOpt,
    ColumnMappingOpt,
    DatasetFormatOpt,
    DatasetSplitOpt,
    EffectiveBatchOpt,
    EpochsOpt,
    GradAccumOpt,
    GradientCheckpointingOpt,
    JsonOpt,
    LearningRateOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    MaxSeqLengthOpt,
    MaxStepsOpt,
    PackingOpt,
    SaveMergedOpt,
    SaveStepsOpt,
    SeedOpt,
    TargetModulesOpt,
    training_settings,
)
from vibeml.cli._output import (
    EXIT_INTERRUPTED,
    STATUS_STYLE,
    console,
    emit_json,
    error_boundary,
    fmt_duration,
    fmt_loss,
    fmt_money,
)
from vibeml.cli._tables import Alt, Col, fit_table, short_loss, short_model, short_money
from vibeml.cli.watch import (
    EvalDatasetOpt,
    EvalDatasetSplitOpt,
    EvalSplitOpt,
    EvalStepsOpt,
    KeepBestOpt,
    ReportToOpt,
    status_rows,
    summary_lines,
    watch_settings,
)
from vibeml.exceptions import TrainingError

if TYPE_CHECKING:
    from vibeml.client import VibeML
    from vibeml.models import JobProgress, JobRecord, OomRetry
    from vibeml.reports import LaunchPreview


def _service() -> "VibeML":
    from vibeml.cli._output import service

    return service()


def register(app: typer.Typer) -> None:
    """Add the job commands to ``app``."""
    app.command("launch")(error_boundary(launch))
    app.command("jobs")(error_boundary(jobs))
    app.command("status")(error_boundary(status))
    app.command("logs")(error_boundary(logs))
    app.command("stop")(error_boundary(stop))
    from vibeml.cli.resume import resume

    app.command("resume")(error_boundary(resume))


# ------------------------------------------------------------------------------------------ launch


def launch(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Hub id or local model dir.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Hub dataset id or .jsonl/.json/.csv/.parquet.")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Use the bundled tiny model and dataset.")] = False,
    workflow: Annotated[str, typer.Option(help="trl-lora (default), qlora, full or unsloth.")] = "trl-lora",
    backend: Annotated[str, typer.Option(help="Where to run: local, vast or skypilot.")] = "local",
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type, e.g. H100 (cloud backends).")] = None,
    gpu_count: Annotated[int, typer.Option(help="GPUs per node.")] = 1,
    strategy: Annotated[
        str | None, typer.Option(help="With several GPUs: ddp (default, data parallel) or fsdp (sharded).")
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="Cloud to use (cloud backends).")] = None,
    spot: Annotated[bool, typer.Option("--spot/--on-demand", help="Interruptible capacity.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Hard budget cap in USD.")] = None,
    max_steps: MaxStepsOpt = None,
    epochs: EpochsOpt = None,
    learning_rate: LearningRateOpt = None,
    batch_size: BatchSizeOpt = None,
    grad_accum: GradAccumOpt = None,
    effective_batch: EffectiveBatchOpt = None,
    max_seq_length: MaxSeqLengthOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    target_modules: TargetModulesOpt = None,
    gradient_checkpointing: GradientCheckpointingOpt = None,
    packing: PackingOpt = None,
    seed: SeedOpt = None,
    save_steps: SaveStepsOpt = None,
    dataset_format: DatasetFormatOpt = "auto",
    dataset_split: DatasetSplitOpt = "train",
    column_mapping: ColumnMappingOpt = None,
    output_dir: Annotated[str | None, typer.Option(help="Where the adapter is delivered.")] = None,
    save_merged: SaveMergedOpt = False,
    push_to_hub: Annotated[
        str | None, typer.Option("--push-to-hub", help="Push the result to this hub repo when the job completes.")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push-to-hub: create the repo private.")] = False,
    sample_prompt: Annotated[
        list[str] | None, typer.Option("--sample-prompt", help="Answered before and after training.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A short label for the job.")] = None,
    resume_from: Annotated[
        str | None, typer.Option("--resume-from", help="Continue from this job's last complete checkpoint.")
    ] = None,
    train_on: Annotated[
        str | None, typer.Option("--train-on", help="Chat data: the loss on 'assistant' turns (default) or 'all'.")
    ] = None,
    eval_split: EvalSplitOpt = None,
    eval_dataset: EvalDatasetOpt = None,
    eval_dataset_split: EvalDatasetSplitOpt = None,
    eval_steps: EvalStepsOpt = None,
    keep_best: KeepBestOpt = False,
    report_to: ReportToOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Show progress until the job ends.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan, the cost and the budget check; start nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Launch a fine-tune (validate → cap → plan → budget check → start). Returns at once unless --follow.

    --dry-run runs the same checks as the launch (so it fails where the launch would) and starts nothing."""

    hyper = training_settings(
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        grad_accum=grad_accum,
        effective_batch=effective_batch,
        max_seq_length=max_seq_length,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        gradient_checkpointing=gradient_checkpointing,
        packing=packing,
        seed=seed,
        save_steps=save_steps,
        column_mapping=column_mapping,
    )
    other: dict[str, Any] = {
        "workflow": workflow,
        "backend": backend,
        "gpu_type": gpu,
        "gpu_count": gpu_count,
        "strategy": strategy,
        "cloud": cloud,
        "use_spot": spot,
        "max_cost": max_cost,
        "dataset_format": dataset_format,
        "dataset_split": dataset_split,
        "output_dir": output_dir,
        "save_merged": save_merged,
        "push_to_hub": push_to_hub,
        "hub_private": private or None,
        "name": name,
        "resume_from": resume_from,
        "train_on": train_on,
    }
    if sample_prompt:
        other["sample_prompts"] = sample_prompt
    other = {k: v for k, v in other.items() if v is not None}
    other.update(
        watch_settings(
            eval_split=eval_split,
            eval_dataset=eval_dataset,
            eval_dataset_split=eval_dataset_split,
            eval_steps=eval_steps,
            keep_best=keep_best,
            report_to=report_to,
        )
    )

    svc = _service()
    if demo and not (model or dataset):
        with console(stderr=True).status("Preparing the bundled demo model and dataset (built offline, cached)…"):
            request = svc.request_from(demo=True, **other, **hyper)
    else:  # the service says what is wrong with --demo plus --model, or a missing --model/--dataset
        request = svc.request_from(model, dataset, demo=demo, **other, **hyper)

    if dry_run:
        preview = svc.preview_launch(request)
        if json_out:
            emit_json(preview)
        else:
            _render_preview(preview)
        return
    record = svc.launch(request)
    report_launch(svc, record, follow, json_out)


def report_launch(svc: "VibeML", record: "JobRecord", follow: bool, json_out: bool) -> None:
    """After a launch (or a resume): the warnings and notes, then the job's id, or its progress (--follow)."""
    for warning in record.warnings:
        console(stderr=True).print(f"[yellow]Budget warning:[/] {warning}")
    from rich.markup import escape

    for note in record.notes:
        console(stderr=True).print(f"[cyan]Resume:[/] {escape(note)}")
    if not follow:
        if json_out:
            emit_json(record)
        else:
            out = console()
            out.print(f"[bold green]Launched[/] {record.job_id} on {record.backend} ({record.request.workflow})")
            out.print(f"  status: vibeml status {record.job_id}")
            out.print(f"  logs:   vibeml logs {record.job_id} -f")
            out.print(f"  stop:   vibeml stop {record.job_id}")
        return
    final = follow_job(svc, record.job_id, json_out)
    if final.status.value == "failed":
        raise typer.Exit(TrainingError.exit_code)
    if final.status.value == "stopped":
        raise typer.Exit(1)


def _render_preview(p: "LaunchPreview") -> None:
    from rich.markup import escape

    from vibeml.cli.estimate import render_plan

    out = console()
    r, e = p.request, p.estimate
    out.print(f"[bold]Dry run[/]: nothing was started. {r.workflow} on {r.backend}")
    out.print(f"  model:    {escape(r.model)}")
    out.print(f"  dataset:  {escape(r.dataset)}")
    gpus = f"{e.gpu_count}× {e.gpu_type}" if e.gpu_type else "no particular GPU"  # None: not tied to a GPU
    where = gpus + (f" on {e.cloud}" if e.cloud else "") + (" (spot)" if e.use_spot else "")
    out.print(
        f"  estimate: [bold]{fmt_money(e.expected_cost)}[/] ({fmt_money(e.min_cost)}–{fmt_money(e.max_cost)}), "
        f"{e.estimated_duration_hours:.2f} h at {fmt_money(e.hourly_rate)}/h, {where}"
    )
    if p.choice is not None and p.choice.region:
        out.print(f"  rents:    {p.choice.gpu_count}× {p.choice.gpu_type} in {p.choice.cloud}/{p.choice.region}")
    if p.budget.job_cap is not None:
        out.print(f"  cap:      {fmt_money(p.budget.job_cap)}")
    if p.trainer_max_runtime_seconds is not None:
        out.print(f"  trainer stops by {fmt_duration(p.trainer_max_runtime_seconds)} (checkpointing first)")
    if p.plan is not None:
        render_plan(p.plan, title="Choices, cheapest total cost first")
    for warning in p.budget.warnings:
        console(stderr=True).print(f"[yellow]Budget warning:[/] {escape(warning)}")


def follow_job(svc: "VibeML", job_id: str, json_out: bool = False, poll: float = 0.5) -> "JobRecord":
    """Poll until the job ends, showing a progress bar (or JSON lines), then a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    start = time.monotonic()
    record = svc.get_status(job_id)
    if json_out:
        last_step = -1
        while True:
            p = record.progress
            step = p.step if p else 0
            if step != last_step or record.status.is_terminal:
                emit_json({"job_id": job_id, "status": record.status.value, "progress": p})
                last_step = step
            if record.status.is_terminal:
                emit_json(record)
                return record
            time.sleep(poll)
            record = svc.get_status(job_id)

    out = console()
    out.print(f"[bold]Job {job_id}[/] on {record.backend} — following (Ctrl-C detaches; the job keeps running)")
    progress = Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss [bold]{task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TextColumn("ETA {task.fields[eta]}"),
        console=out,
        transient=False,
    )
    printed_steps: set[int] = set()
    try:
        with progress:
            task = progress.add_task("starting", total=None, loss="-", tps="-", eta="-")
            while True:
                p = record.progress
                if p is not None:
                    total = p.max_steps
                    progress.update(
                        task,
                        description=record.status.value,
                        total=total,
                        completed=p.step,
                        loss=fmt_loss(p.loss),
                        tps=f"{p.tokens_per_s:,.0f}" if p.tokens_per_s else "-",
                        eta=fmt_duration(p.eta_seconds),
                    )
                    # A line every ~10% so the falling loss stays in the scrollback.
                    if total and p.loss is not None:
                        mark = (p.step * 10) // max(1, total)
                        if mark not in printed_steps and p.step > 0:
                            printed_steps.add(mark)
                            progress.console.print(
                                f"  step {p.step:>5}/{total}  loss {p.loss:.4f}"
                                + (f"  lr {p.learning_rate:.2e}" if p.learning_rate else "")
                            )
                if record.status.is_terminal:
                    break
                time.sleep(poll)
                record = svc.get_status(job_id)
    except KeyboardInterrupt:
        out.print(f"\n[yellow]Detached.[/] {job_id} keeps running: vibeml status {job_id}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_summary(record, time.monotonic() - start, svc)
    return record


def oom_line(r: "OomRetry") -> str:
    """One out-of-memory retry, with the memory estimate's error when the device's capacity is known."""
    text = f"out of memory at step {r.step} ({r.failed}); retried with {r.next}"
    if r.estimated_gib is not None and r.capacity_gib is not None:
        text += f"; estimated {r.estimated_gib:.1f} GiB of {r.capacity_gib:.1f}"
    return text


def score_text(p: "JobProgress") -> str:
    """The held-out score before → after training, e.g. ``0% (0/60) → 95% (57/60)`` (``?`` for a side not
    scored: the run stopped early)."""
    before = p.score_before.text if p.score_before is not None else "?"
    after = p.score_after.text if p.score_after is not None else "?"
    return f"{before} → {after}"


def print_summary(record: "JobRecord", waited: float | None = None, svc: "VibeML | None" = None) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    out = console()
    p = record.progress
    style = STATUS_STYLE.get(record.status.value, "")
    lines = [f"[{style}]{record.status.value}[/]  {record.job_id}"]
    if p is not None:
        if p.first_loss is not None and p.loss is not None:
            drop = (1 - p.loss / p.first_loss) * 100 if p.first_loss else 0.0
            lines.append(f"Loss: {p.first_loss:.4f} → {p.loss:.4f} ({-drop:+.1f}%)")
        if p.score_before is not None or p.score_after is not None:
            lines.append(f"Held-out exact match: {score_text(p)}")
        lines.append(f"Steps: {p.step}" + (f"/{p.max_steps}" if p.max_steps else ""))
        if p.elapsed_seconds is not None:
            lines.append(f"Training time: {fmt_duration(p.elapsed_seconds)}")
        lines += [f"[yellow]{oom_line(r)}[/]" for r in p.oom_retries]
    if waited is not None:
        lines.append(f"Wall time: {fmt_duration(waited)}")
    if record.error and record.status.value != "completed":
        lines.append(f"[red]{escape(record.error)}[/]")
    if record.status.value == "completed" and record.output_dir:
        lines.append(f"Adapter: {escape(record.output_dir)}")
    if svc is not None:
        lines += summary_lines(svc, record)
    if p is not None and (p.samples_before or p.samples_after):
        after = {s["prompt"]: s["completion"] for s in p.samples_after}
        for s in p.samples_before:
            lines.append(f"\n[bold]Q:[/] {escape(s['prompt'])}")
            lines.append(f"  before: {escape(s['completion'].strip()[:120])!r}")
            if s["prompt"] in after:
                lines.append(f"  after:  {escape(after[s['prompt']].strip()[:120])!r}")
    if record.status.value == "completed" and record.output_dir:
        method = "full" if record.request.workflow == "full" else "lora"
        loader = "AutoModelForCausalLM" if method == "full" else "AutoPeftModelForCausalLM"
        pkg = "transformers" if method == "full" else "peft"
        lines.append(
            "\n[bold]Use it:[/]\n"
            f"  from {pkg} import {loader}\n"
            "  from transformers import AutoTokenizer\n"
            f"  model = {loader}.from_pretrained({record.output_dir!r})\n"
            f"  tokenizer = AutoTokenizer.from_pretrained({record.output_dir!r})"
        )
    out.print(Panel("\n".join(lines), title="VibeML job summary", expand=False))


# -------------------------------------------------------------------------------------- tracking


#: `vibeml jobs`: under 120 columns the creation time goes (it stays in --json), then the backend, the
#: name and the eval loss as the width requires; the job id, status, model, step, loss and cost stay.
JOB_COLUMNS = (
    Col("job"),
    Col("name", drop=3),
    Col("status"),
    Col("backend", drop=4),
    Col("model", flex=True),
    Col("step"),
    Col("loss"),
    Col("eval", drop=2),
    Col("cost"),
    Col("created", wide_only=True),
)


def jobs(
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List jobs with their current status."""
    svc = _service()
    records = svc.list_jobs(limit=limit)
    if json_out:
        emit_json(records)
        return
    _warn_orphans(svc)
    if not records:
        console().print("No jobs yet. Try: vibeml launch --demo --follow")
        return
    out = console()
    rows = []
    for r in records:
        p = r.progress
        step = "-" if p is None else (f"{p.step}/{p.max_steps}" if p.max_steps else str(p.step))
        model = r.request.model
        if len(model) > 32:
            model = "…" + model[-31:]
        status_cell = f"[{STATUS_STYLE.get(r.status.value, '')}]{r.status.value}[/]"
        rows.append(
            [
                r.job_id,
                r.name or "",
                status_cell,
                r.backend,
                Alt(model, short_model(r.request.model)),
                step,
                Alt(fmt_loss(p.loss if p else None), short_loss(p.loss if p else None)),
                Alt(fmt_loss(p.eval_loss if p else None), short_loss(p.eval_loss if p else None)),
                Alt(fmt_money(r.cost_so_far), short_money(r.cost_so_far)),
                r.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            ]
        )
    table = fit_table(JOB_COLUMNS, rows, out, title="VibeML jobs")
    out.print(table)


def _warn_orphans(svc: "VibeML") -> None:
    """Reconcile the paid backends in use and report what they left behind (an unreachable provider is
    not an error here: the command's own answer comes first)."""
    from rich.markup import escape

    from vibeml.exceptions import VibeMLError

    try:
        orphans = svc.reconcile().orphans
    except VibeMLError:
        return
    if orphans:
        console(stderr=True).print(
            f"[bold yellow]{len(orphans)} paid instance(s) VibeML rented here have no live job[/] "
            f"({escape(', '.join(o.id for o in orphans[:5]))}): destroy them with `vibeml vast cleanup`."
        )


def status(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    json_out: JsonOpt = False,
) -> None:
    """Show one job: status, step, loss, ETA, cost so far."""
    svc = _service()
    record = svc.get_status(job_id)
    if json_out:
        emit_json(record)
        return
    _warn_orphans(svc)
    from rich.markup import escape
    from rich.table import Table

    p = record.progress
    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("job", record.job_id),
        ("status", f"[{STATUS_STYLE.get(record.status.value, '')}]{record.status.value}[/]"),
        ("backend", record.backend),
        ("workflow", record.request.workflow),
        ("model", escape(record.request.model)),
        ("dataset", escape(record.request.dataset)),
    ]
    if p is not None:
        rows += [
            ("step", f"{p.step}/{p.max_steps}" if p.max_steps else str(p.step)),
            ("loss", fmt_loss(p.loss) + (f" (first {p.first_loss:.4f})" if p.first_loss else "")),
            ("tokens/s", f"{p.tokens_per_s:,.0f}" if p.tokens_per_s else "-"),
            ("elapsed", fmt_duration(p.elapsed_seconds)),
            ("ETA", fmt_duration(p.eta_seconds) if not record.status.is_terminal else "-"),
        ]
        if p.world_size and p.world_size > 1:
            nodes = f" on {p.num_nodes} nodes" if p.num_nodes and p.num_nodes > 1 else ""
            batch = f", global batch {p.global_batch_size}" if p.global_batch_size else ""
            rows.append(("processes", f"{p.world_size}{nodes} ({p.strategy or '-'}){batch}"))
        if p.last_checkpoint:
            rows.append(("checkpoint", escape(p.last_checkpoint)))
        if p.score_before is not None or p.score_after is not None:
            rows.append(("held-out score", score_text(p)))
        rows += [("out of memory", oom_line(r)) for r in p.oom_retries]
    rows += status_rows(svc, record)  # eval loss, best checkpoint, sparklines
    rows.append(("cost so far", fmt_money(record.cost_so_far)))
    if record.request.max_cost is not None:
        rows.append(("budget", fmt_money(record.request.max_cost)))
    if record.output_dir:
        rows.append(("output", escape(record.output_dir)))
    if record.error:
        rows.append(("error", f"[red]{escape(record.error)}[/]"))
    for k, v in rows:
        table.add_row(k, v)
    console().print(table)


def logs(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    tail: Annotated[int, typer.Option(help="How many of the last lines.")] = 200,
    json_out: JsonOpt = False,
) -> None:
    """Print a job's log."""
    import sys

    svc = _service()
    lines = svc.logs(job_id, tail=tail, follow=follow)
    if json_out and not follow:
        emit_json({"job_id": job_id, "lines": list(lines)})
        return
    try:
        for line in lines:
            if json_out:
                import json

                sys.stdout.write(json.dumps({"job_id": job_id, "line": line}) + "\n")
            else:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def stop(
    job_id: Annotated[str, typer.Argument(help="Job id (or a unique prefix).")],
    grace: Annotated[float | None, typer.Option(help="Seconds to let it checkpoint before it is killed.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop a job (it checkpoints first). Stopping a finished job is fine and changes nothing."""
    record = _service().stop(job_id, grace_seconds=grace)
    if json_out:
        emit_json(record)
        return
    style = STATUS_STYLE.get(record.status.value, "")
    console().print(f"{record.job_id}: [{style}]{record.status.value}[/]")
