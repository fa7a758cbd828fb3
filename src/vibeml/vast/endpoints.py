"""The Vast.ai REST surface as data: one :class:`Endpoint` per method of the official SDK's ``VastAI``.

Each entry names the HTTP verb, the path (``{param}`` placeholders), the method's parameters (names and
defaults as in the official ``vastai`` 1.9.1 SDK) and how they travel: ``body``/``query`` map a wire field
to ``"$param"`` (a parameter's value), ``"$param|conv"`` (converted, see :data:`CONVERTERS`) or a
constant. ``omit_none`` lists wire fields left out when their value is ``None``; ``result`` names the key
of the answer a method returns (``None``: the whole answer). :class:`vibeml.vast.VastAI` and
:class:`vibeml.vast.AsyncVastAI` build their methods from this table; the few whose behaviour is more
than one request (search and create with the query language, logs, paging) are written out in the client
modules and listed in :data:`SPECIAL`. Methods the official SDK itself does not implement are listed in
:data:`NOT_APPLICABLE` with the reason.

Deliberate differences from the official client (the wire-conformance test knows them):
:data:`KEY_IN_BODY` methods, where the official client also copies the API key into a JSON body or a
query, send it only in the ``Authorization`` header.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vibeml.exceptions import ValidationError

__all__ = [
    "CONVERTERS",
    "ENDPOINTS",
    "KEY_IN_BODY",
    "NOT_APPLICABLE",
    "REQUIRED",
    "SPECIAL",
    "Endpoint",
    "P",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a parameter that has none.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class P:
    """One parameter: ``kw`` makes it keyword-only (the official method takes it through ``**kwargs``)."""

    name: str
    default: Any = REQUIRED
    kw: bool = False


@dataclass(frozen=True)
class Endpoint:
    verb: str
    path: str
    params: tuple[P, ...] = ()
    body: Mapping[str, Any] | None = None
    query: Mapping[str, Any] | None = None
    omit_none: frozenset[str] = frozenset()
    result: str | None = None
    result_default: Any = None
    idempotent: bool | None = None  # None: GET/PUT/DELETE are, POST is not
    doc: str = ""
    base: str = "api"  # "autoscaler": the serverless autoscaler (run.vast.ai for the default server)
    fan_out: str | None = None  # a list parameter: one request per item, the answers as a list
    post: str | None = None  # a post-processing step (see the client's _POST)
    extra_ok: tuple[str, ...] = field(default=())

    @property
    def safe_to_retry(self) -> bool:
        return self.idempotent if self.idempotent is not None else self.verb != "POST"


def _timestamp(value: Any, param: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).strip()).timestamp()
    except ValueError:
        raise ValidationError(
            f"{param}: could not parse {str(value)[:60]!r} as a date.",
            context={"param": param},
            recovery_suggestion="Use a format like '2026-08-24' or '2026-08-24 13:00:00'.",
        ) from None


_DAY = 24 * 3600.0

_VOLUME_TYPES = {"local": "local_volume", "network": "network_volume", "all": "all_volume"}

#: ``"$param|name"`` converters: (value, all arguments) → wire value.
CONVERTERS: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "start_ts": lambda v, a: _timestamp(v, "start_date") if v else time.time() - _DAY,
    "end_ts": lambda v, a: _timestamp(v, "end_date") if v else time.time(),
    "start_day": lambda v, a: _timestamp(v, "start_date") / _DAY if v else time.time() / _DAY - 1.0,
    "end_day": lambda v, a: _timestamp(v, "end_date") / _DAY if v else time.time() / _DAY - 1.0,
    "not": lambda v, a: not v,
    "volume_type": lambda v, a: _VOLUME_TYPES.get(v, "all_volume"),
    "true_or_none": lambda v, a: True if v else None,
    "wg_search": lambda v, a: ((v or "") + ("" if a.get("no_default") else " " + _WG_SEARCH)).strip(),
    "or_none": lambda v, a: v or None,
}

ID = P("id")
_ENDPOINT_FIELDS = (
    "min_load",
    "min_cold_load",
    "target_util",
    "cold_mult",
    "cold_workers",
    "max_workers",
    "endpoint_name",
    "max_queue_time",
    "target_queue_time",
    "inactivity_timeout",
)
_WORKERGROUP_FIELDS = ("template_hash", "template_id", "launch_args", "gpu_ram", "endpoint_name", "endpoint_id")
_WG_SEARCH = "verified=True rentable=True rented=False"


def _tfa(*params: P, fixed: Mapping[str, Any] | None = None, **wire: str) -> dict[str, Any]:
    body = dict(fixed or {})
    body.update(wire)
    return {"params": params, "body": body, "omit_none": frozenset(body)}


def _e(verb: str, path: str, *params: P, **kw: Any) -> Endpoint:
    if "params" in kw:  # from _tfa
        params = kw.pop("params")
    if "omit_none" in kw:
        kw["omit_none"] = frozenset(kw["omit_none"])
    return Endpoint(verb, path, tuple(params), **kw)


ENDPOINTS: dict[str, Endpoint] = {
    # ------------------------------------------------------------------ instances
    "show_instances_v1": _e("GET", "/api/v1/instances/", P("params"), query={"**": "$params"}),
    "show_instance_filters": _e("GET", "/instances/filters/", result="filters", result_default=[]),
    "destroy_instances": _e("DELETE", "/instances/", P("ids"), body={"instance_ids": "$ids"}),
    "start_instances": _e("PUT", "/instances/", P("ids"), body={"state": "running", "ids": "$ids"}),
    "stop_instances": _e("PUT", "/instances/", P("ids"), body={"state": "stopped", "ids": "$ids"}),
    "reboot_instance": _e("PUT", "/instances/reboot/{id}/", ID, body={}),
    "recycle_instance": _e("PUT", "/instances/recycle/{id}/", ID, body={}, idempotent=False),
    "prepay_instance": _e(
        "PUT", "/instances/prepay/{id}/", ID, P("amount"), body={"amount": "$amount"}, idempotent=False
    ),
    "update_instance": _e(
        "PUT",
        "/instances/update_template/{id}/",
        ID,
        *(P(n, None, kw=True) for n in ("template_id", "template_hash_id", "image", "args", "env", "onstart")),
        body={
            "id": "$id",
            **{n: f"${n}" for n in ("template_id", "template_hash_id", "image", "args", "env", "onstart")},
        },
        omit_none=("template_id", "template_hash_id", "image", "args", "env", "onstart"),
    ),
    "take_snapshot": _e(
        "POST",
        "/instances/take_snapshot/{instance_id}/",
        P("instance_id"),
        P("repo", None, kw=True),
        P("container_registry", "docker.io", kw=True),
        P("docker_login_user", None, kw=True),
        P("docker_login_pass", None, kw=True),
        P("pause", "true", kw=True),
        body={
            "id": "$instance_id",
            "container_registry": "$container_registry",
            "personal_repo": "$repo",
            "docker_login_user": "$docker_login_user",
            "docker_login_pass": "$docker_login_pass",
            "pause": "$pause",
        },
    ),
    "show_pending_price_increases": _e("GET", "/instances/pending-price-increases/"),
    "show_deposit": _e("GET", "/instances/balance/{id}/", ID, query={"owner": "me"}),
    # ------------------------------------------------------------------ deployments
    "show_deployments": _e("GET", "/deployments", result="deployments"),
    "show_deployment": _e("GET", "/deployment/{id}/", ID, result="deployment"),
    "show_deployment_versions": _e("GET", "/deployment/{id}/versions/", ID, result="versions"),
    "delete_deployment": _e("DELETE", "/deployment/{id}/", ID, body={}),
    # ------------------------------------------------------------------ machines (hosting)
    "show_machines": _e("GET", "/machines", query={"owner": "me"}, result="machines"),
    "show_machine": _e("GET", "/machines/{id}", ID, query={"owner": "me"}, post="one_machine"),
    "show_maints": _e("GET", "/machines/maintenances", P("ids"), query={"owner": "me", "machine_ids": "$ids"}),
    "list_machine": _e(
        "PUT",
        "/machines/create_asks/",
        ID,
        *(
            P(n, None, kw=True)
            for n in (
                "price_gpu",
                "price_disk",
                "price_inetu",
                "price_inetd",
                "price_min_bid",
                "min_chunk",
                "end_date",
                "discount_rate",
                "duration",
                "vol_size",
                "vol_price",
            )
        ),
        body={
            "machine": "$id",
            **{
                n: f"${n}"
                for n in (
                    "price_gpu",
                    "price_disk",
                    "price_inetu",
                    "price_inetd",
                    "price_min_bid",
                    "min_chunk",
                    "end_date",
                )
            },
            "credit_discount_max": "$discount_rate",
            "duration": "$duration",
            "vol_size": "$vol_size",
            "vol_price": "$vol_price",
        },
    ),
    "unlist_machine": _e("DELETE", "/machines/{id}/asks/", ID, body={}),
    "set_defjob": _e(
        "PUT",
        "/machines/create_bids/",
        ID,
        *(P(n, None, kw=True) for n in ("price_gpu", "price_inetu", "price_inetd", "image", "args")),
        body={"machine": "$id", **{n: f"${n}" for n in ("price_gpu", "price_inetu", "price_inetd", "image", "args")}},
    ),
    "remove_defjob": _e("DELETE", "/machines/{id}/defjob/", ID, body={}),
    "set_min_bid": _e(
        "PUT", "/machines/{id}/minbid/", ID, P("price", None), body={"client_id": "me", "price": "$price"}
    ),
    "schedule_maint": _e(
        "PUT",
        "/machines/{id}/dnotify/",
        ID,
        P("sdate"),
        P("duration"),
        P("category", "not provided"),
        body={"client_id": "me", "sdate": "$sdate", "duration": "$duration", "maintenance_category": "$category"},
    ),
    "cancel_maint": _e("PUT", "/machines/{id}/cancel_maint/", ID, body={"client_id": "me", "machine_id": "$id"}),
    "cleanup_machine": _e("PUT", "/machines/{id}/cleanup/", ID, body={}),
    "defrag_machines": _e("PUT", "/machines/defrag_offers/", P("ids"), body={"machine_ids": "$ids"}),
    "delete_machine": _e("POST", "/machines/{id}/force_delete/", ID, body={}),
    "reports": _e("GET", "/machines/{id}/reports/", ID, body={"machine_id": "$id"}),
    # ------------------------------------------------------------------ teams
    "create_team": _e("POST", "/team/", P("team_name"), body={"team_name": "$team_name", "transfer_credit": 0}),
    "destroy_team": _e("DELETE", "/team/", body={}),
    "show_members": _e("GET", "/team/members/"),
    "show_team_members": _e("GET", "/team/members/"),
    "invite_member": _e(
        "POST", "/team/invite/", P("email"), P("role"), query={"email": "$email", "role": "$role"}, body={}
    ),
    "invite_team_member": _e(
        "POST", "/team/invite/", P("email"), P("role"), query={"email": "$email", "role": "$role"}, body={}
    ),
    "remove_member": _e("DELETE", "/team/members/{id}/", ID, body={}),
    "remove_team_member": _e("DELETE", "/team/members/{id}/", ID, body={}),
    "show_team_roles": _e("GET", "/team/roles-full/"),
    "show_team_role": _e("GET", "/team/roles/{name}/", P("name")),
    "create_team_role": _e(
        "POST", "/team/roles/", P("name"), P("permissions"), body={"name": "$name", "permissions": "$permissions"}
    ),
    "update_team_role": _e(
        "PUT",
        "/team/roles/{id}/",
        ID,
        P("name", None, kw=True),
        P("permissions", None, kw=True),
        body={"name": "$name", "permissions": "$permissions"},
        omit_none=("name", "permissions"),
    ),
    "remove_team_role": _e("DELETE", "/team/roles/{name}/", P("name"), body={}),
    "transfer_credit": _e(
        "PUT",
        "/commands/transfer_credit/",
        P("recipient"),
        P("amount"),
        body={"sender": "me", "recipient": "$recipient", "amount": "$amount"},
        idempotent=False,
    ),
    # ------------------------------------------------------------------ keys
    "update_ssh_key": _e("PUT", "/ssh/{id}/", ID, P("ssh_key"), body={"id": "$id", "ssh_key": "$ssh_key"}),
    "detach_ssh": _e(
        "DELETE", "/instances/{instance_id}/ssh/{ssh_key_id}/", P("instance_id"), P("ssh_key_id"), body={}
    ),
    "show_api_keys": _e("GET", "/auth/apikeys/", post="unwrap_apikeys"),
    "show_api_key": _e("GET", "/auth/apikeys/{id}/", ID),
    "create_api_key": _e(
        "POST",
        "/auth/apikeys/",
        P("name"),
        P("permissions"),
        P("key_params", None),
        body={"name": "$name", "permissions": "$permissions", "key_params": "$key_params"},
        omit_none=("permissions", "key_params"),
    ),
    "delete_api_key": _e("DELETE", "/auth/apikeys/{id}/", ID, body={}),
    "reset_api_key": _e("PUT", "/commands/reset_apikey/", body={"client_id": "me"}, idempotent=False),
    # ------------------------------------------------------------------ serverless
    "show_endpoints": _e("GET", "/endptjobs/", body={"client_id": "me"}, post="results_without_keys"),
    "create_endpoint": _e(
        "POST",
        "/endptjobs/",
        P("min_load", 0.0, kw=True),
        P("min_cold_load", 0.0, kw=True),
        P("target_util", 0.9, kw=True),
        P("cold_mult", 2.5, kw=True),
        P("cold_workers", 5, kw=True),
        P("max_workers", 20, kw=True),
        P("endpoint_name", None, kw=True),
        P("max_queue_time", None, kw=True),
        P("target_queue_time", None, kw=True),
        P("inactivity_timeout", None, kw=True),
        P("auto_instance", "prod", kw=True),
        body={"client_id": "me", **{n: f"${n}" for n in _ENDPOINT_FIELDS}, "autoscaler_instance": "$auto_instance"},
    ),
    "update_endpoint": _e(
        "PUT",
        "/endptjobs/{id}/",
        ID,
        *(P(n, None, kw=True) for n in (*_ENDPOINT_FIELDS, "endpoint_state")),
        P("auto_instance", "prod", kw=True),
        body={
            "client_id": "me",
            "endptjob_id": "$id",
            **{n: f"${n}" for n in _ENDPOINT_FIELDS[:7]},
            "endpoint_state": "$endpoint_state",
            **{n: f"${n}" for n in _ENDPOINT_FIELDS[7:]},
            "autoscaler_instance": "$auto_instance",
        },
    ),
    "delete_endpoint": _e("DELETE", "/endptjobs/{id}/", ID, body={"client_id": "me", "endptjob_id": "$id"}),
    "get_endpt_logs": _e(
        "POST",
        "/get_endpoint_logs/",
        ID,
        P("level", 1),
        P("tail", None),
        body={"id": "$id", "tail": "$tail"},
        omit_none=("tail",),
        base="autoscaler",
        idempotent=True,
    ),
    "show_workergroups": _e("GET", "/autojobs/", body={"client_id": "me"}, post="results"),
    "create_workergroup": _e(
        "POST",
        "/autojobs/",
        *(P(n, None, kw=True) for n in _WORKERGROUP_FIELDS),
        P("search_params", None, kw=True),
        P("no_default", False, kw=True),
        P("auto_instance", "prod", kw=True),
        body={
            "client_id": "me",
            "template_hash": "$template_hash",
            "template_id": "$template_id",
            "search_params": "$search_params|wg_search",
            "launch_args": "$launch_args",
            "gpu_ram": "$gpu_ram",
            "endpoint_name": "$endpoint_name",
            "endpoint_id": "$endpoint_id",
            "autoscaler_instance": "$auto_instance",
        },
    ),
    "update_workergroup": _e(
        "PUT",
        "/autojobs/{id}/",
        ID,
        *(P(n, None, kw=True) for n in _WORKERGROUP_FIELDS),
        P("search_params", None, kw=True),
        P("no_default", False, kw=True),
        body={
            "client_id": "me",
            "autojob_id": "$id",
            "template_hash": "$template_hash",
            "template_id": "$template_id",
            "search_params": "$search_params|wg_search",
            "launch_args": "$launch_args",
            "gpu_ram": "$gpu_ram",
            "endpoint_name": "$endpoint_name",
            "endpoint_id": "$endpoint_id",
        },
    ),
    "delete_workergroup": _e("DELETE", "/autojobs/{id}/", ID, body={"client_id": "me", "autojob_id": "$id"}),
    "get_wrkgrp_logs": _e(
        "POST",
        "/get_autogroup_logs/",
        ID,
        P("level", 1),
        P("tail", None),
        body={"id": "$id", "tail": "$tail"},
        omit_none=("tail",),
        base="autoscaler",
        idempotent=True,
    ),
    "get_endpoint_workers": _e(
        "POST", "/get_endpoint_workers/", ID, body={"id": "$id"}, base="autoscaler", idempotent=True
    ),
    "update_workers": _e(
        "POST",
        "/update_workers/",
        ID,
        P("cancel", False),
        body={"workergroup_id": "$id", "cancel_update": "$cancel|true_or_none"},
        omit_none=("cancel_update",),
        base="autoscaler",
    ),
    # ------------------------------------------------------------------ billing and account
    "show_invoices": _e(
        "GET",
        "/users/me/invoices",
        P("start_date", None),
        P("end_date", None),
        P("only_charges", False),
        P("only_credits", False),
        query={
            "owner": "me",
            "sdate": "$start_date|start_ts",
            "edate": "$end_date|end_ts",
            "inc_charges": "$only_credits|not",
        },
        post="invoices",
    ),
    "show_earnings": _e(
        "GET",
        "/users/me/machine-earnings",
        P("start_date", None),
        P("end_date", None),
        P("machine_id", None),
        query={"owner": "me", "sday": "$start_date|start_day", "eday": "$end_date|end_day", "machid": "$machine_id"},
    ),
    "set_user": _e("PUT", "/users/", P("params"), body={"**": "$params"}),
    "show_subaccounts": _e("GET", "/subaccounts", query={"owner": "me"}, result="users"),
    "show_ipaddrs": _e("GET", "/users/me/ipaddrs", query={"owner": "me"}, result="results"),
    "fetch_contracts": _e(
        "POST",
        "/contracts/fetch/",
        P("label", None),
        P("contract_ids", None),
        body={"label": "$label", "contract_ids": "$contract_ids"},
        omit_none=("label", "contract_ids"),
        result="contracts",
        idempotent=True,
    ),
    # ------------------------------------------------------------------ storage
    "cancel_copy": _e("DELETE", "/commands/copy_direct/", P("dst_id"), body={"client_id": "me", "dst_id": "$dst_id"}),
    "cancel_sync": _e("DELETE", "/commands/rclone/", P("dst_id"), body={"client_id": "me", "dst_id": "$dst_id"}),
    "clone_volume": _e(
        "POST",
        "/volumes/copy/",
        P("source"),
        P("dest"),
        P("size", None, kw=True),
        P("disable_compression", False, kw=True),
        body={
            "src_id": "$source",
            "dst_id": "$dest",
            "size": "$size",
            "disable_compression": "$disable_compression|true_or_none",
        },
        omit_none=("size", "disable_compression"),
    ),
    "show_volumes": _e(
        "GET", "/volumes", P("type", "all"), query={"owner": "me", "type": "$type|volume_type"}, post="volumes"
    ),
    "show_instance_backups": _e(
        "GET",
        "/instance_backups/",
        P("contract_id", None),
        query={"contract_id": "$contract_id"},
        omit_none=("contract_id",),
        result="backups",
    ),
    "instance_backup_files": _e("GET", "/instance_backups/{contract_id}/download/", P("contract_id")),
    "create_volume": _e(
        "PUT",
        "/volumes/",
        ID,
        P("size", 15),
        P("name", None),
        body={"size": "$size", "id": "$id", "name": "$name|or_none"},
        omit_none=("name",),
        idempotent=False,
    ),
    "delete_volume": _e("DELETE", "/volumes/", ID, query={"id": "$id"}, body={}),
    "list_volume": _e(
        "POST",
        "/volumes/",
        ID,
        P("size", 15, kw=True),
        P("price_disk", 0.1, kw=True),
        P("end_date", None, kw=True),
        body={"size": "$size", "machine": "$id", "price_disk": "$price_disk", "end_date": "$end_date"},
        omit_none=("end_date",),
    ),
    "list_volumes": _e(
        "POST",
        "/volumes/",
        P("ids"),
        P("size", 15, kw=True),
        P("price_disk", 0.1, kw=True),
        P("end_date", None, kw=True),
        body={"size": "$size", "machine": "$ids", "price_disk": "$price_disk", "end_date": "$end_date"},
        omit_none=("end_date",),
    ),
    "unlist_volume": _e("POST", "/volumes/unlist", ID, body={"id": "$id"}, idempotent=True),
    "create_network_volume": _e(
        "PUT",
        "/network_volumes/",
        ID,
        P("size", 15),
        P("name", None),
        body={"size": "$size", "id": "$id", "name": "$name|or_none"},
        omit_none=("name",),
        idempotent=False,
    ),
    "list_network_volume": _e(
        "POST",
        "/network_volumes/",
        P("disk_id"),
        P("price_disk", 0.15, kw=True),
        P("size", 15, kw=True),
        P("end_date", None, kw=True),
        body={"disk_id": "$disk_id", "price_disk": "$price_disk", "size": "$size", "end_date": "$end_date"},
        omit_none=("end_date",),
    ),
    "unlist_network_volume": _e("POST", "/network_volumes/unlist/", ID, body={"id": "$id"}, idempotent=True),
    "show_network_disks": _e("GET", "/network_disk/"),
    "add_network_disk": _e(
        "POST",
        "/network_disk/",
        P("machines"),
        P("mount_point"),
        P("disk_id", None),
        body={"machines": "$machines", "mount_point": "$mount_point", "disk_id": "$disk_id"},
        omit_none=("disk_id",),
    ),
    "show_connections": _e("GET", "/users/cloud_integrations/"),
    # ------------------------------------------------------------------ clusters and overlays
    "show_clusters": _e("GET", "/clusters/"),
    "create_cluster": _e(
        "POST", "/cluster/", P("subnet"), P("manager_id"), body={"subnet": "$subnet", "manager_id": "$manager_id"}
    ),
    "delete_cluster": _e("DELETE", "/cluster/", P("cluster_id"), body={"cluster_id": "$cluster_id"}),
    "join_cluster": _e(
        "PUT",
        "/cluster/",
        P("cluster_id"),
        P("machine_ids"),
        body={"cluster_id": "$cluster_id", "machine_ids": "$machine_ids"},
    ),
    "remove_machine_from_cluster": _e(
        "DELETE",
        "/cluster/remove_machine/",
        P("cluster_id"),
        P("machine_id"),
        P("new_manager_id", None),
        body={"cluster_id": "$cluster_id", "machine_id": "$machine_id", "new_manager_id": "$new_manager_id"},
        omit_none=("new_manager_id",),
    ),
    "show_overlays": _e("GET", "/overlay/"),
    "create_overlay": _e(
        "POST", "/overlay/", P("cluster_id"), P("name"), body={"cluster_id": "$cluster_id", "name": "$name"}
    ),
    "delete_overlay": _e(
        "DELETE", "/overlay/", P("overlay_identifier", None), body={"overlay_name": "$overlay_identifier"}
    ),
    "join_overlay": _e(
        "PUT", "/overlay/", P("name"), P("instance_id"), body={"name": "$name", "instance_id": "$instance_id"}
    ),
    # ------------------------------------------------------------------ account settings
    "show_audit_logs": _e("GET", "/audit_logs/"),
    "show_env_vars": _e(
        "GET", "/secrets/", P("show_values", False), result="secrets", result_default={}, post="mask_env"
    ),
    "create_env_var": _e("POST", "/secrets/", P("name"), P("value"), body={"key": "$name", "value": "$value"}),
    "update_env_var": _e("PUT", "/secrets/", P("name"), P("value"), body={"key": "$name", "value": "$value"}),
    "delete_env_var": _e("DELETE", "/secrets/", P("name"), body={"key": "$name"}),
    "show_scheduled_jobs": _e("GET", "/commands/schedule_job/"),
    "create_scheduled_job": _e(
        "POST",
        "/commands/schedule_job/",
        P("start_time"),
        P("end_time"),
        P("api_endpoint"),
        P("request_method"),
        P("request_body"),
        P("frequency"),
        P("instance_id"),
        P("day_of_the_week", None, kw=True),
        P("hour_of_the_day", None, kw=True),
        body={
            n: f"${n}"
            for n in (
                "start_time",
                "end_time",
                "api_endpoint",
                "request_method",
                "request_body",
                "day_of_the_week",
                "hour_of_the_day",
                "frequency",
                "instance_id",
            )
        },
    ),
    "update_scheduled_job": _e(
        "PUT",
        "/commands/schedule_job/{id}/",
        ID,
        P("request_body"),
        *(
            P(n, None, kw=True)
            for n in (
                "start_time",
                "end_time",
                "api_endpoint",
                "request_method",
                "frequency",
                "instance_id",
                "day_of_the_week",
                "hour_of_the_day",
            )
        ),
        body={
            "request_body": "$request_body",
            **{
                n: f"${n}"
                for n in (
                    "start_time",
                    "end_time",
                    "api_endpoint",
                    "request_method",
                    "frequency",
                    "instance_id",
                    "day_of_the_week",
                    "hour_of_the_day",
                )
            },
        },
        omit_none=(
            "start_time",
            "end_time",
            "api_endpoint",
            "request_method",
            "frequency",
            "instance_id",
            "day_of_the_week",
            "hour_of_the_day",
        ),
    ),
    "delete_scheduled_job": _e("DELETE", "/commands/schedule_job/{id}/", ID, body={}),
    # ------------------------------------------------------------------ two-factor authentication
    "tfa_activate": _e(
        "POST",
        "/tfa/confirm-new/",
        **_tfa(
            P("code", kw=True),
            P("secret", kw=True),
            P("method_type", "totp", kw=True),
            P("phone_number", None, kw=True),
            P("label", None, kw=True),
            P("method_id", None, kw=True),
            tfa_method_id="$method_id",
            tfa_method="$method_type",
            code="$code",
            secret="$secret",
            phone_number="$phone_number",
            label="$label",
        ),
    ),
    "tfa_delete": _e(
        "DELETE",
        "/tfa/",
        **_tfa(
            P("code", None, kw=True),
            P("backup_code", None, kw=True),
            P("method_type", None, kw=True),
            P("secret", None, kw=True),
            P("method_id", None, kw=True),
            P("id_to_delete", None, kw=True),
            tfa_method_id="$method_id",
            tfa_method="$method_type",
            code="$code",
            backup_code="$backup_code",
            secret="$secret",
            target_id="$id_to_delete",
        ),
    ),
    "tfa_login": _e(
        "POST",
        "/tfa/",
        **_tfa(
            P("code", None, kw=True),
            P("backup_code", None, kw=True),
            P("method_type", None, kw=True),
            P("secret", None, kw=True),
            P("method_id", None, kw=True),
            tfa_method_id="$method_id",
            tfa_method="$method_type",
            code="$code",
            backup_code="$backup_code",
            secret="$secret",
        ),
    ),
    "tfa_regen_codes": _e(
        "PUT",
        "/tfa/regen-backup-codes/",
        **_tfa(
            P("code", None, kw=True),
            P("backup_code", None, kw=True),
            P("method_type", None, kw=True),
            P("secret", None, kw=True),
            P("method_id", None, kw=True),
            tfa_method_id="$method_id",
            tfa_method="$method_type",
            code="$code",
            backup_code="$backup_code",
            secret="$secret",
        ),
        idempotent=False,
    ),
    "tfa_resend_sms": _e(
        "POST",
        "/tfa/sms/resend/",
        **_tfa(P("secret", kw=True), P("phone_number", None, kw=True), secret="$secret", phone_number="$phone_number"),
    ),
    "tfa_send_sms": _e(
        "POST",
        "/tfa/sms/",
        P("phone_number", None, kw=True),
        body={"phone_number": "$phone_number|or_none"},
        omit_none=("phone_number",),
    ),
    "tfa_status": _e("GET", "/tfa/status/"),
    "tfa_totp_setup": _e("POST", "/tfa/totp-setup/", body={}),
    "tfa_update": _e(
        "PUT",
        "/tfa/update/",
        P("method_id", kw=True),
        P("label", None, kw=True),
        P("set_primary", None, kw=True),
        body={"tfa_method_id": "$method_id", "label": "$label", "is_primary": "$set_primary"},
        omit_none=("label", "is_primary"),
    ),
}

#: Methods the clients write out (more than one request, the query language, or purely local).
SPECIAL: dict[str, str] = {
    "search_offers": "query language → POST /bundles/",
    "search_offers_new": "query language → POST /bundles/ (the official SDK's newer parser, same wire form)",
    "search_templates": "query language → GET /template/",
    "search_benchmarks": "query language → GET /benchmarks, paged by after_token",
    "search_benchmarks_v1": "GET /benchmarks with the caller's params",
    "search_volumes": "query language → POST /volumes/search/",
    "search_network_volumes": "query language → POST /network_volumes/search/",
    "search_invoices": "query language → GET /invoices",
    "show_invoices_v1": "GET /api/v1/invoices/ with a default date window",
    "create_instance": "PUT /asks/{id}/ with a lookup by label after an ambiguous failure",
    "create_instances": "POST /asks/bulk/",
    "launch_instance": "PUT /launch_instance/ with a search query",
    "show_instances": "GET /api/v1/instances/, following next_token",
    "show_instance": "GET /instances/{id}/?owner=me",
    "destroy_instance": "DELETE /instances/{id}/, done when a retry finds it gone",
    "start_instance": "PUT /instances/{id}/ {state: running}",
    "stop_instance": "PUT /instances/{id}/ {state: stopped}",
    "label_instance": "PUT /instances/{id}/ {label}",
    "change_bid": "PUT /instances/bid_price/{id}/",
    "logs": "PUT /instances/request_logs/{id}/, then GET result_url until ready",
    "execute": "PUT /instances/command/{id}/, then GET result_url until ready",
    "ssh_url": "show_instance, then the address (local)",
    "scp_url": "show_instance, then the address (local)",
    "accept_price_increase": "GET the pending list, then PUT the matching row's accept",
    "reject_price_increase": "GET the pending list, then PUT the matching row's reject",
    "show_user": "GET /users/current without secret fields",
    "show_ssh_keys": "GET /ssh/",
    "create_ssh_key": "POST /ssh/ (reads ~/.ssh/id_*.pub when no key is given)",
    "delete_ssh_key": "DELETE /ssh/{id}/",
    "attach_ssh": "POST /instances/{id}/ssh/",
    "copy": "'<instance>:<path>' locations → PUT /commands/copy_direct/ or /commands/rsync/",
    "cloud_copy": "POST /commands/rclone/",
    "list_machines": "list_machine for each id",
    "create_subaccount": "POST /users/",
    "create_template": "POST /template/",
    "update_template": "resolve the hash id, then PUT /template/",
    "delete_template": "DELETE /template/",
    "create_team_role_alias": "",
    "set_api_key": "local: replaces the key this client sends",
}
SPECIAL.pop("create_team_role_alias")

#: Official methods that do nothing but raise in the official SDK itself.
NOT_APPLICABLE: dict[str, str] = {
    "generate_pdf_invoices": "the official SDK raises NotImplementedError (PDF invoices are a CLI feature)",
    "self_test_machine": "the official SDK raises NotImplementedError ('requires CLI': it runs on the host)",
}

#: Methods where the official client copies the API key into the request body or query; ours sends it only
#: in the Authorization header.
KEY_IN_BODY: frozenset[str] = frozenset(
    {
        "show_endpoints",
        "show_workergroups",
        "get_endpt_logs",
        "get_wrkgrp_logs",
        "get_endpoint_workers",
        "update_workers",
    }
)
