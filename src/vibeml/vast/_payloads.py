"""Request bodies for the methods that are more than a table entry (create, launch, templates, copy, searches).

Pure functions shared by :class:`vibeml.vast.VastAI` and :class:`vibeml.vast.AsyncVastAI`; they produce the
bodies the official ``vastai`` 1.9.1 SDK sends for the same arguments (checked by the wire-conformance
test), and raise :class:`~vibeml.exceptions.ValidationError` where it raises ``ValueError``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from vibeml.exceptions import ValidationError
from vibeml.vast.query import DEFAULT_FILTERS, build_search_query, parse_order, parse_query

__all__ = [
    "create_payload",
    "launch_payload",
    "offer_search_body",
    "parse_env",
    "parse_location",
    "rclone_flags",
    "template_payload",
    "volume_search_body",
]

_UNIX_PATH = re.compile(r"^(/)?([^/\0]+(/)?)+$")
_OFFER_DEFAULTS_WITH_RENTED = {**{k: dict(v) for k, v in DEFAULT_FILTERS.items()}, "rented": {"eq": False}}


def _bad(message: str, hint: str) -> ValidationError:
    return ValidationError(message, recovery_suggestion=hint)


def parse_env(env: Mapping[str, Any] | str | None) -> dict[str, str]:
    """A dict, or the official ``"-e K=V -p 8080:8080"`` string, as the wire dict."""
    if env is None:
        return {}
    if isinstance(env, Mapping):
        return {str(k): v if isinstance(v, str) else str(v) for k, v in env.items()}
    result: dict[str, str] = {}
    words = shlex.split(env)
    i = 0
    while i < len(words):
        flag = words[i]
        if flag in ("-e", "-p", "-h") and i + 1 < len(words):
            value = words[i + 1]
            if flag == "-e" and "=" in value:
                k, v = value.split("=", 1)
                result[k] = v
            elif flag != "-e":
                result[f"{flag} {value}"] = "1"
            i += 2
        else:
            i += 1
    return result


def resolve_runtype(
    runtype: str | None,
    *,
    ssh: bool,
    jupyter: bool,
    direct: bool,
    args: Any,
    jupyter_lab: bool,
    jupyter_dir: str | None,
) -> tuple[str | None, Any]:
    """The runtype string the friendly flags stand for, and the args to send (an empty list selects args)."""
    empty_args = args in ("", [""], [])
    if empty_args:
        args = None
    if runtype:
        if ssh or jupyter or direct:
            raise _bad("Pass either runtype= or the ssh/jupyter/direct flags, not both.", "Drop one of them.")
        return runtype, args
    resolved: str | None = "args" if args or empty_args else None
    jupyter = jupyter or bool(jupyter_dir or jupyter_lab)
    if jupyter and resolved == "args":
        raise _bad("jupyter and args cannot be combined.", "Use onstart_cmd instead of args with jupyter.")
    if jupyter:
        resolved = "jupyter_direc ssh_direc ssh_proxy" if direct else "jupyter_proxy ssh_proxy"
    elif ssh:
        resolved = "ssh_direc ssh_proxy" if direct else "ssh_proxy"
    elif direct:
        raise _bad("direct=True needs ssh=True or jupyter=True.", "Add ssh=True (or jupyter=True).")
    return resolved, args


def _volume_info(
    create_volume: int | None,
    link_volume: int | None,
    volume_size: float | None,
    mount_path: str | None,
    volume_label: str | None,
) -> dict[str, Any] | None:
    if volume_size is not None and not create_volume:
        raise _bad("volume_size needs create_volume.", "Pass create_volume=<offer id> with volume_size.")
    if not (create_volume or link_volume):
        if mount_path or volume_label:
            raise _bad("mount_path and volume_label need create_volume or link_volume.", "Add one of them.")
        return None
    if not mount_path:
        raise _bad("mount_path is required when creating or linking a volume.", "Pass e.g. mount_path='/data'.")
    if not _UNIX_PATH.match(mount_path):
        raise _bad(f"mount_path {mount_path[:80]!r} is not a valid Linux path.", "Use an absolute path like /data.")
    info: dict[str, Any] = {
        "mount_path": mount_path,
        "create_new": bool(create_volume),
        "volume_id": create_volume or link_volume,
    }
    if volume_label:
        info["name"] = volume_label
    if volume_size:
        info["size"] = volume_size
    elif create_volume:
        info["size"] = 15
    return info


def _portal_config(env: dict[str, str], runtype: str | None) -> dict[str, str]:
    if (runtype and "jupyter" in runtype) or "PORTAL_CONFIG" not in env:
        return env
    kept = [c for c in env["PORTAL_CONFIG"].split("|") if "jupyter" not in c.lower()]
    if not kept:
        raise _bad(
            "PORTAL_CONFIG must keep at least one non-jupyter entry when the runtype is not jupyter.",
            "Add a non-jupyter entry or choose jupyter=True.",
        )
    return {**env, "PORTAL_CONFIG": "|".join(kept)}


def create_payload(
    *,
    image: str | None = None,
    disk: float = 10,
    env: Mapping[str, Any] | str | None = None,
    price: float | None = None,
    label: str | None = None,
    extra: str | None = None,
    onstart_cmd: str | None = None,
    login: str | None = None,
    python_utf8: bool = False,
    lang_utf8: bool = False,
    jupyter_lab: bool = False,
    jupyter_dir: str | None = None,
    force: bool = False,
    cancel_unavail: bool = False,
    template_hash: str | None = None,
    user: str | None = None,
    runtype: str | None = None,
    args: Sequence[str] | str | None = None,
    volume_info: dict[str, Any] | None = None,
    bid_price: float | None = None,
    ssh: bool = False,
    jupyter: bool = False,
    direct: bool = False,
    create_volume: int | None = None,
    link_volume: int | None = None,
    volume_size: float | None = None,
    mount_path: str | None = None,
    volume_label: str | None = None,
) -> dict[str, Any]:
    """The body of ``PUT /asks/{id}/`` (and ``POST /asks/bulk/``)."""
    if price is not None and bid_price is not None:
        raise _bad("Pass either price= or bid_price=, not both.", "Keep one of them.")
    if price is None:
        price = bid_price
    wire_env = parse_env(env)
    arg_list: Any = shlex.split(args) if isinstance(args, str) and args else args
    if template_hash is None:
        runtype, arg_list = resolve_runtype(
            runtype,
            ssh=ssh,
            jupyter=jupyter,
            direct=direct,
            args=arg_list,
            jupyter_lab=jupyter_lab,
            jupyter_dir=jupyter_dir,
        )
    wire_env = _portal_config(wire_env, runtype)
    if volume_info is None:
        volume_info = _volume_info(create_volume, link_volume, volume_size, mount_path, volume_label)
    elif create_volume or link_volume:
        raise _bad("Pass either volume_info= or the create/link volume arguments, not both.", "Keep one of them.")
    body: dict[str, Any] = {
        "client_id": "me",
        "image": image,
        "env": wire_env,
        "price": price,
        "disk": disk,
        "label": label,
        "extra": extra,
        "onstart": onstart_cmd,
        "image_login": login,
        "python_utf8": python_utf8,
        "lang_utf8": lang_utf8,
        "use_jupyter_lab": jupyter_lab,
        "jupyter_dir": jupyter_dir,
        "force": force,
        "cancel_unavail": cancel_unavail,
        "template_hash_id": template_hash,
        "user": user,
    }
    if runtype:
        body["runtype"] = runtype
    if arg_list is not None:
        body["args"] = list(arg_list)
    if volume_info:
        body["volume_info"] = volume_info
    return body


REGIONS = {
    "North_America": "[AG, BS, BB, BZ, CA, CR, CU, DM, DO, SV, GD, GT, HT, HN, JM, MX, NI, PA, KN, LC, VC, TT, US]",
    "South_America": "[AR, BO, BR, CL, CO, EC, FK, GF, GY, PY, PE, SR, UY, VE]",
    "Europe": "[AL, AD, AT, BY, BE, BA, BG, HR, CY, CZ, DK, EE, FI, FR, DE, GR, HU, IS, IE, IT, LV, LI, LT, LU, MT, "
    "MD, MC, ME, NL, MK, NO, PL, PT, RO, RU, SM, RS, SK, SI, ES, SE, CH, UA, GB, VA, XK]",
    "Asia": "[AF, AM, AZ, BH, BD, BT, BN, KH, CN, GE, IN, ID, IR, IQ, IL, JP, JO, KZ, KW, KG, LA, LB, MY, MV, MN, MM, "
    "NP, KP, OM, PK, PH, QA, SA, SG, KR, LK, SY, TW, TJ, TH, TL, TR, TM, AE, UZ, VN, YE, HK, MO]",
    "Oceania": "[AS, AU, CK, FJ, PF, GU, KI, MH, FM, NR, NC, NZ, NU, MP, PW, PG, PN, WS, SB, TK, TO, TV, VU, WF]",
    "Africa": "[DZ, AO, BJ, BW, BF, BI, CV, CM, CF, TD, KM, CG, CD, CI, DJ, EG, GQ, ER, SZ, ET, GA, GM, GH, GN, "
    "GW, KE, LS, LR, LY, MG, MW, ML, MR, MU, MA, MZ, NA, NE, NG, RW, ST, SN, SC, SL, SO, ZA, SS, SD, TZ, TG, "
    "TN, UG, ZM, ZW]",
}


def launch_payload(
    gpu_name: str,
    num_gpus: str,
    image: str,
    *,
    region: str | None,
    disk: float,
    order: str,
    limit: int | None,
    env: Mapping[str, Any] | str | None,
    label: str | None,
    extra: str | None,
    onstart_cmd: str | None,
    login: str | None,
    python_utf8: bool,
    lang_utf8: bool,
    jupyter_lab: bool,
    jupyter_dir: str | None,
    cancel_unavail: bool,
    template_hash: str | None,
    runtype: str | None,
    args: Any,
    query: dict[str, Any] | None,
    ssh: bool,
    jupyter: bool,
    direct: bool,
) -> dict[str, Any]:
    """The body of ``PUT /launch_instance/`` (search and rent in one request)."""
    if template_hash is None:
        runtype, args = resolve_runtype(
            runtype,
            ssh=ssh,
            jupyter=jupyter,
            direct=direct,
            args=args,
            jupyter_lab=jupyter_lab,
            jupyter_dir=jupyter_dir,
        )
    if query is None:
        text = f"num_gpus={num_gpus} gpu_name={gpu_name}"
        if region:
            text += f" geolocation in {REGIONS.get(region, region)}"
        if disk:
            text += f" disk_space>={disk}"
        query = parse_query(text, {k: dict(v) for k, v in _OFFER_DEFAULTS_WITH_RENTED.items()})
    query = dict(query)
    query["order"] = parse_order(order)
    query["type"] = "on-demand"
    if limit:
        query["limit"] = int(limit)
    query["allocated_storage"] = disk
    body: dict[str, Any] = {
        "image": image,
        "disk": disk,
        "q": query,
        "env": parse_env(env),
        "label": label,
        "extra": extra,
        "onstart": onstart_cmd,
        "image_login": login,
        "python_utf8": python_utf8,
        "lang_utf8": lang_utf8,
        "use_jupyter_lab": jupyter_lab,
        "jupyter_dir": jupyter_dir,
        "cancel_unavail": cancel_unavail,
        "template_hash_id": template_hash,
    }
    if runtype:
        body["runtype"] = runtype
    if args is not None:
        body["args"] = args
    return body


def template_payload(
    *,
    name: str | None,
    image: str | None,
    image_tag: str | None,
    href: str | None,
    repo: str | None,
    login: str | None,
    env: str | None,
    ssh: bool,
    jupyter: bool,
    direct: bool,
    jupyter_dir: str | None,
    jupyter_lab: bool,
    onstart_cmd: str | None,
    search_params: str | None,
    no_default: bool,
    disk_space: float | None,
    readme: str | None,
    hide_readme: bool,
    desc: str | None,
    public: bool,
    runtype: str | None = None,
    use_ssh: bool | None = None,
    jup_direct: bool | None = None,
    ssh_direct: bool | None = None,
    use_jupyter_lab: bool | None = None,
    docker_login_repo: str | None = None,
    extra_filters: dict[str, Any] | None = None,
    readme_visible: bool | None = None,
    private: bool | None = None,
) -> dict[str, Any]:
    """The template body of ``POST /template/`` (and, with an id and hash, ``PUT /api/v1/template/``).

    The friendly flags (``ssh``, ``jupyter``, ``hide_readme``, …) and the raw field names both work; the raw
    ones win, as in the official SDK.
    """
    defaults = {k: dict(v) for k, v in DEFAULT_FILTERS.items()} if (not no_default and search_params) else {}
    fields: dict[str, Any] = {
        "jup_direct": jupyter and direct,
        "ssh_direct": ssh and direct,
        "use_ssh": ssh or jupyter,
        "use_jupyter_lab": jupyter_lab,
        "runtype": "jupyter" if jupyter else ("ssh" if ssh else "args"),
        "docker_login_repo": login.split(" ")[0] if login else None,
        "extra_filters": parse_query(search_params, defaults) if search_params else defaults,
        "readme_visible": not hide_readme,
        "private": not public,
    }
    overrides = {
        "runtype": runtype,
        "use_ssh": use_ssh,
        "jup_direct": jup_direct,
        "ssh_direct": ssh_direct,
        "use_jupyter_lab": use_jupyter_lab,
        "docker_login_repo": docker_login_repo,
        "extra_filters": extra_filters,
        "readme_visible": readme_visible,
        "private": private,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return {
        "name": name,
        "image": image,
        "tag": image_tag,
        "href": href,
        "repo": repo,
        "env": env,
        "onstart": onstart_cmd,
        "jup_direct": fields["jup_direct"],
        "ssh_direct": fields["ssh_direct"],
        "use_ssh": fields["use_ssh"],
        "use_jupyter_lab": fields["use_jupyter_lab"],
        "runtype": fields["runtype"],
        "jupyter_dir": jupyter_dir,
        "docker_login_repo": fields["docker_login_repo"],
        "extra_filters": fields["extra_filters"] or {},
        "recommended_disk_space": disk_space,
        "readme": readme,
        "readme_visible": fields["readme_visible"],
        "desc": desc,
        "private": fields["private"],
    }


def parse_location(text: str) -> tuple[str | int | None, str]:
    """``"<instance>:<path>"`` (or a bare path, or a bare instance id) → (location id, path)."""
    location: str | int | None = None
    path = text
    if ":" in text:
        parts = text.split(":", 2)
        if len(parts) != 2:
            raise _bad(f"Invalid location {text[:80]!r}.", "Use '<instance id>:<path>', e.g. '1234:/workspace'.")
        location, path = parts
    else:
        try:
            location, path = int(text), "/"
        except ValueError:
            pass
    if path != "/" and not _UNIX_PATH.match(path):
        raise _bad(f"{path[:80]!r} is not a valid Unix path.", "Use a path like /workspace/data.")
    return location, path


def rclone_flags(
    *, dry_run: bool, size_only: bool, ignore_existing: bool, update: bool, delete_excluded: bool
) -> list[str]:
    named = {
        "--dry-run": dry_run,
        "--size-only": size_only,
        "--ignore-existing": ignore_existing,
        "--update": update,
        "--delete-excluded": delete_excluded,
    }
    return [flag for flag, on in named.items() if on]


def offer_search_body(
    query: str | Mapping[str, Any] | None,
    *,
    type: str,
    order: str,
    limit: int | None,
    storage: float,
    no_default: bool,
) -> dict[str, Any]:
    """The offer query (``POST /bundles/``'s body): query text is parsed over the default filters; a parsed
    dict is merged over them plus ``rented=false``, as the official SDK does for each."""
    if not isinstance(query, Mapping):
        return build_search_query(
            query or "", type=type, order=order, limit=limit, storage=storage, no_default=no_default
        )
    body = build_search_query("", type=type, order=order, limit=limit, storage=storage, no_default=True)
    filters: dict[str, Any] = {} if no_default else {k: dict(v) for k, v in _OFFER_DEFAULTS_WITH_RENTED.items()}
    filters.update(query)
    filters.update(body)
    return filters


def volume_search_body(
    query: str | dict[str, Any] | None,
    order: str | list[Any] | None,
    limit: int | None,
    storage: float,
    no_default: bool,
) -> dict[str, Any]:
    """The body of ``POST /volumes/search/`` and ``POST /network_volumes/search/``."""
    parsed = parse_query(query, {}) if isinstance(query, str) else dict(query or {})
    body: dict[str, Any] = (
        parsed if no_default else {"verified": {"eq": True}, "external": {"eq": False}, "disk_space": {"gte": 1}}
    )
    if not no_default:
        body.update(parsed)
    body["order"] = parse_order(order) if isinstance(order, str) else (order or [["score", "desc"]])
    if limit:
        body["limit"] = int(limit)
    body["allocated_storage"] = storage
    return body
