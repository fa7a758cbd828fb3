"""`vibeml config …`: preferences and stored credentials. Thin: parse, one call into
:mod:`vibeml.config`, render. Secrets are only ever read from a hidden prompt or stdin (``--value`` needs
``--insecure-value``) and only ever shown masked."""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vibeml.cli._options import JsonOpt
from vibeml.cli._output import console, emit_json, error_boundary, settings
from vibeml.exceptions import ConfigurationError, CredentialError

if TYPE_CHECKING:
    from vibeml.config.credentials import CredentialManager
    from vibeml.config.preferences import PreferencesStore

ProviderArg = Annotated[str, typer.Argument(help="Provider, e.g. vast, huggingface, wandb.")]
TypeArg = Annotated[str, typer.Argument(help="Credential type, e.g. api_key (vast, wandb) or token (huggingface).")]

_MAX_STDIN = 64 * 1024


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    group = typer.Typer(
        name="config",
        help="Preferences (launch defaults, budgets) and encrypted credentials.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("show")(error_boundary(show))
    group.command("set")(error_boundary(set_preference))
    group.command("unset")(error_boundary(unset_preference))
    group.command("set-credential")(error_boundary(set_credential))
    group.command("delete-credential")(error_boundary(delete_credential))
    group.command("check-credentials")(error_boundary(check_credentials))
    app.add_typer(group, name="config")


# ------------------------------------------------------------------------------------ helpers


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _hidden_prompt(message: str) -> str:
    return str(typer.prompt(message, hide_input=True))


def _credentials() -> "CredentialManager":
    from vibeml.config.credentials import CredentialManager

    return CredentialManager.from_settings(settings(), prompt=_hidden_prompt if _stdin_is_tty() else None)


def _preferences() -> "PreferencesStore":
    from vibeml.config.preferences import PreferencesStore

    return PreferencesStore(settings().config_dir)


def _read_secret(provider: str, credential_type: str) -> str:
    """The value from a hidden prompt (terminal) or stdin (pipe); surrounding whitespace removed."""
    if _stdin_is_tty():
        value = _hidden_prompt(f"Value for {provider} {credential_type} (input hidden)")
    else:
        value = sys.stdin.read(_MAX_STDIN + 1)
        if len(value) > _MAX_STDIN:
            raise ConfigurationError(
                "the value on stdin is larger than 64 KiB", recovery_suggestion="Pipe only the credential itself."
            )
    value = value.strip()
    if not value:
        raise ConfigurationError(
            "no credential value given (the input was empty)",
            {"provider": provider, "credential_type": credential_type},
            f"Run `vibeml config set-credential {provider} {credential_type}` in a terminal to be prompted, "
            f'or pipe the value: printf %s "$VALUE" | vibeml config set-credential {provider} {credential_type}',
        )
    return value


def _toml_value(value: object) -> str:
    import json

    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------------------------------ commands


def show(json_out: JsonOpt = False) -> None:
    """Show preferences and stored credentials (values masked, never shown in full)."""
    from rich.markup import escape
    from rich.table import Table

    from vibeml.config.credentials import PassphraseRequiredError

    store = _preferences()
    prefs = store.load()
    manager = _credentials()
    locked = False
    try:
        items = manager.list_providers(with_masked=True)
    except PassphraseRequiredError:
        items, locked = [], True
    if json_out:
        emit_json(
            {
                "config_dir": str(store.config_dir),
                "preferences_file": str(store.path),
                "preferences": prefs,
                "preferences_set": sorted(prefs.model_fields_set),
                "credentials_file": str(manager.path),
                "credentials_key_source": manager.key_source(),
                "credentials_locked": locked,
                "credentials": items,
            }
        )
        return
    out = console()
    table = Table(title=f"Preferences ({escape(str(store.path))})")
    table.add_column("key")
    table.add_column("value")
    for name in store.keys():
        value = getattr(prefs, name)
        shown = "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        mark = "" if name in prefs.model_fields_set else " [dim](default)[/]"
        table.add_row(name, escape(shown) + mark)
    out.print(table)
    if locked:
        out.print("[yellow]Credentials:[/] the store is passphrase-locked; set VIBEML_PASSPHRASE or run in a terminal.")
        return
    if not items:
        out.print("No stored credentials. Add one: vibeml config set-credential vast api_key")
        return
    creds = Table(title=f"Credentials ({escape(str(manager.path))}, key: {manager.key_source()})")
    for col in ("provider", "type", "value", "updated"):
        creds.add_column(col)
    for item in items:
        updated = item.updated_at.astimezone().strftime("%Y-%m-%d %H:%M") if item.updated_at else "-"
        creds.add_row(escape(item.provider), escape(item.credential_type), escape(item.masked or ""), updated)
    out.print(creds)


def set_preference(
    key: Annotated[str, typer.Argument(help="Preference name (see `vibeml config show`).")],
    value: Annotated[str, typer.Argument(help="New value, e.g. H100, true, 25.")],
    json_out: JsonOpt = False,
) -> None:
    """Set one preference; the whole configuration is validated first and nothing changes if it fails."""
    prefs = _preferences().set(key, value)
    if json_out:
        emit_json(prefs)
        return
    name = key.strip().replace("-", "_")
    console().print(f"{name} = {_toml_value(getattr(prefs, name))}", markup=False)


def unset_preference(
    key: Annotated[str, typer.Argument(help="Preference name.")],
    json_out: JsonOpt = False,
) -> None:
    """Remove one preference so its default applies again."""
    prefs = _preferences().unset(key)
    if json_out:
        emit_json(prefs)
        return
    name = key.strip().replace("-", "_")
    console().print(f"{name} = {_toml_value(getattr(prefs, name))} (default)", markup=False)


def set_credential(
    provider: ProviderArg,
    credential_type: TypeArg,
    value: Annotated[
        str | None,
        typer.Option("--value", help="The value as an argument: visible in shell history; needs --insecure-value."),
    ] = None,
    insecure_value: Annotated[
        bool,
        typer.Option("--insecure-value", help="Accept that --value lands in shell history and process listings."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Store a credential, encrypted. The value is read from a hidden prompt, or from stdin when piped."""
    from pydantic import SecretStr

    from vibeml.config.credentials import normalize_name

    if value is not None and not insecure_value:
        raise ConfigurationError(
            "refusing --value: the secret would land in your shell history and the process list",
            {"provider": provider, "credential_type": credential_type},
            "Leave out --value to be prompted (input hidden), or pipe it in: "
            f'printf %s "$VALUE" | vibeml config set-credential {provider} {credential_type}. '
            "To insist, add --insecure-value.",
        )
    if insecure_value and value is None:
        raise ConfigurationError("--insecure-value goes only with --value")
    prov, ctype = normalize_name(provider, "provider"), normalize_name(credential_type, "credential type")
    secret = SecretStr(value if value is not None else _read_secret(prov, ctype))
    manager = _credentials()
    manager.store_credential(prov, ctype, secret)
    check = manager.validate_credentials(prov)[prov][ctype]
    if json_out:
        emit_json({"stored": True, "path": str(manager.path), "key_source": manager.key_source(), "check": check})
        return
    console().print(
        f"Stored {prov}/{ctype} ({check.masked}) in {manager.path} (key: {manager.key_source()})", markup=False
    )
    if check.valid_format is False:
        console(stderr=True).print(f"[yellow]Warning:[/] it {check.message}; stored anyway.")


def delete_credential(provider: ProviderArg, credential_type: TypeArg, json_out: JsonOpt = False) -> None:
    """Delete a stored credential (deleting one that is not there is not an error)."""
    from vibeml.config.credentials import normalize_name

    prov, ctype = normalize_name(provider, "provider"), normalize_name(credential_type, "credential type")
    deleted = _credentials().delete_credential(prov, ctype)
    if json_out:
        emit_json({"provider": prov, "credential_type": ctype, "deleted": deleted})
        return
    console().print(f"Deleted {prov}/{ctype}." if deleted else f"Nothing stored for {prov}/{ctype}.", markup=False)


def check_credentials(
    provider: Annotated[str | None, typer.Option("--provider", help="Check only this provider.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check stored (and environment) credentials are present and well-formed. Nothing is sent anywhere.

    Exits 7 when a credential is malformed, or when --provider is given and it has none.
    """
    from rich.markup import escape
    from rich.table import Table

    report = _credentials().validate_credentials(provider)
    checks = [c for types in report.values() for c in types.values()]
    failed = any(c.present and c.valid_format is False for c in checks)
    if provider and not any(c.present for c in checks):
        failed = True
    if json_out:
        emit_json({"ok": not failed, "providers": report})
    else:
        table = Table(title="Credentials (format checks only)")
        for col in ("provider", "type", "status", "source", "value", "note"):
            table.add_column(col)
        for c in checks:
            status = (
                "[dim]missing[/]"
                if not c.present
                else "[red]malformed[/]"
                if c.valid_format is False
                else "[green]ok[/]"
            )
            row: list[Any] = [c.provider, c.credential_type, status, c.source or "-", c.masked or "-", c.message]
            table.add_row(*(escape(str(v)) if i != 2 else v for i, v in enumerate(row)))
        if not checks:
            console().print(f"No credentials known for {escape(provider or '')}.")
        else:
            console().print(table)
    if failed:
        raise typer.Exit(CredentialError.exit_code)
