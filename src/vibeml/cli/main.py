"""The `vibeml` command. Start-up imports only typer and our light modules: torch, transformers and
SkyPilot are imported inside the commands that need them."""

from typing import Annotated

import typer

from vibeml import __version__
from vibeml.cli import budget as budget_cli
from vibeml.cli import config as config_cli
from vibeml.cli import estimate as estimate_cli
from vibeml.cli import jobs as jobs_cli
from vibeml.cli import results as results_cli
from vibeml.cli import script as script_cli
from vibeml.cli import sky as sky_cli
from vibeml.cli import validate as validate_cli
from vibeml.cli import vast as vast_cli
from vibeml.cli import watch as watch_cli
from vibeml.cli._output import STATE, console, emit_json, error_boundary

app = typer.Typer(
    name="vibeml",
    help="Fine-tune open LLMs on the cheapest GPU that fits, without overspending.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vibeml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """VibeML: validate, estimate, launch, track and stop fine-tunes — locally or in the cloud."""
    STATE["debug"] = debug
    # Settings are read from the environment once per run, when the command first asks (`_output.settings()`,
    # before it does anything, under its error boundary: a bad value is a clean error in the command's --json
    # mode), never at import or for --help.


jobs_cli.register(app)
results_cli.register(app)
config_cli.register(app)
budget_cli.register(app)
estimate_cli.register(app)
sky_cli.register(app)
script_cli.register(app)
validate_cli.register(app)
vast_cli.register(app)
watch_cli.register(app)


@app.command("workflows")
@error_boundary
def workflows(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the training workflows."""
    from vibeml.workflows import list_workflows

    items = list_workflows()
    if json_out:
        emit_json(items)
        return
    from rich.table import Table

    table = Table(title="Workflows")
    table.add_column("name")
    table.add_column("method")
    table.add_column("description")
    for w in items:
        table.add_row(w.name, w.method, w.description)
    console().print(table)


@app.command("mcp")
@error_boundary
def mcp(
    http: Annotated[str | None, typer.Option("--http", help="Serve over HTTP on HOST:PORT instead of stdio.")] = None,
) -> None:
    """Run the MCP server (stdio by default) so an AI assistant can plan, launch and track fine-tunes."""
    from vibeml.cli._output import settings
    from vibeml.mcp.server import main as serve

    serve(http, settings())


@app.command("skill")
@error_boundary
def skill(
    path: Annotated[bool, typer.Option("--path", help="Print where SKILL.md is installed instead.")] = False,
) -> None:
    """Print VibeML's agent skill (SKILL.md): how an AI assistant should use VibeML, cost first, yes before money."""
    from importlib import resources

    found = resources.files("vibeml") / "SKILL.md"
    if path:
        typer.echo(str(found))
        return
    typer.echo(found.read_text(encoding="utf-8"), nl=False)


def run() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    run()
