"""`vibeml chat / generate / push / export`: use and share a finished job (thin wrappers over the service;
torch is imported only when a command loads a model)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vibeml.cli._options import JsonOpt
from vibeml.cli._output import console, emit_json, error_boundary

if TYPE_CHECKING:
    from vibeml.client import VibeML

JobArg = Annotated[str, typer.Argument(help="Job id (or a unique prefix) of a completed job.")]
MaxNewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", help="Longest answer, in tokens.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (a CUDA GPU when visible), cpu or cuda.")]


def register(app: typer.Typer) -> None:
    app.command("chat")(error_boundary(chat))
    app.command("generate")(error_boundary(generate))
    app.command("push")(error_boundary(push))
    app.command("export")(error_boundary(export))


def _service() -> VibeML:
    from vibeml.cli._output import service

    return service()


def generate(
    job_id: JobArg,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What to ask the fine-tuned model.")],
    max_new_tokens: MaxNewTokensOpt = 256,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Answer one prompt with the job's model (its base with the adapter, on this machine)."""
    with console(stderr=True).status("Loading the model…"):
        result = _service().generate(job_id, prompt, max_new_tokens=max_new_tokens, device=device)
    if json_out:
        emit_json(result)
        return
    typer.echo(result.reply)


def chat(
    job_id: JobArg,
    max_new_tokens: MaxNewTokensOpt = 256,
    device: DeviceOpt = "auto",
) -> None:
    """Talk to the job's model. Each line you type is a turn; /reset forgets the conversation; Ctrl-D or
    Ctrl-C (or /exit) ends."""
    err = console(stderr=True)
    with err.status("Loading the model…"):
        session = _service().open_chat(job_id, max_new_tokens=max_new_tokens, device=device)
    err.print(f"[bold]Chatting with {session.job_id}[/] on {session.device} (Ctrl-D to end, /reset to start over)")
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("you> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            if interactive:
                err.print("")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            session.reset()
            err.print("[dim](conversation cleared)[/]")
            continue
        try:
            answer = session.say(text)
        except KeyboardInterrupt:
            err.print("")
            return
        typer.echo(("model> " if interactive else "") + answer)


def push(
    job_id: JobArg,
    repo: Annotated[str, typer.Argument(help="The hub repo, namespace/name (created when missing).")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    merged: Annotated[bool, typer.Option("--merged", help="Also push the merged model (in merged/).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Push the job's adapter, tokenizer and a model card (and the merged model with --merged) to the hub.
    The token is the stored one (`vibeml config set-credential huggingface token`)."""
    with console(stderr=True).status(f"Pushing to {repo}…"):
        report = _service().push(job_id, repo, private=private, merged=merged)
    if json_out:
        emit_json(report)
        return
    out = console()
    out.print(f"[bold green]Pushed[/] {report.job_id} to {report.url} ({len(report.files)} files)")
    for warning in report.warnings:
        console(stderr=True).print(f"[yellow]Warning:[/] {warning}")


def export(
    job_id: JobArg,
    merged: Annotated[bool, typer.Option("--merged", help="Merge the adapter into the base (required).")] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Folder to write (default: merged/ in the job's output).")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="bfloat16 or float32.")] = "bfloat16",
    json_out: JsonOpt = False,
) -> None:
    """Write the job's adapter merged into a bf16 (or fp32) reload of its base model (LoRA and QLoRA)."""
    with console(stderr=True).status("Merging…"):
        report = _service().export(job_id, merged=merged, output_dir=output, dtype=dtype)
    if json_out:
        emit_json(report)
        return
    console().print(f"[bold green]Merged[/] {report.job_id} ({report.dtype}) → {report.output_dir}")
