"""Arguments for driving every public method of the official ``vastai`` SDK and ours the same way.

Each method gets distinctive values (so a value's place in the request shows which parameter it came from);
methods whose parameters need a particular form (queries, ``copy`` locations, SSH keys) get them here.
"""

from __future__ import annotations

import inspect
from typing import Any

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwire user@host"

#: method → (args, kwargs); methods not listed get values from :func:`generic_args`
CASES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "create_ssh_key": ((SSH_KEY,), {}),
    "attach_ssh": ((4101, SSH_KEY), {}),
    "update_ssh_key": ((4102, SSH_KEY), {}),
    "search_offers": (("gpu_name=RTX_4090 num_gpus>=2 reliability>0.99",), {"limit": 7, "order": "dph_total"}),
    "search_offers_new": (("gpu_name=RTX_4090 num_gpus>=2",), {"limit": 7}),
    "search_templates": (("name=pytorch",), {}),
    "search_benchmarks": (("gpu_name=RTX_4090",), {"limit": 3}),
    "search_volumes": (("disk_space>=50",), {"limit": 4}),
    "search_network_volumes": (("disk_space>=50",), {"limit": 4}),
    "search_invoices": (("amount>1",), {}),
    "copy": (("4201:/workspace/a", "4202:/workspace/b"), {}),
    "cloud_copy": (("/workspace/data",), {"dst": "/bucket/data", "instance": "4203", "connection": "4204"}),
    "create_instance": (
        (9001,),
        {"image": "pytorch/pytorch", "disk": 20, "env": {"MODE": "train"}, "label": "job-1", "onstart_cmd": "echo hi"},
    ),
    "create_instances": (([9001, 9002],), {"image": "pytorch/pytorch", "disk": 20, "label": "job-2"}),
    "launch_instance": (("RTX_4090", "1", "pytorch/pytorch"), {"disk": 20, "label": "job-3"}),
    "logs": ((4301,), {"tail": "100"}),
    "execute": ((4302, "ls -l"), {}),
    "schedule_maint": ((4303, 1_800_000_000.0, 2.5), {"category": "power"}),
    "show_maints": (([4304, 4305],), {}),
    "defrag_machines": (([4306, 4307],), {}),
    "list_machines": (([4308, 4309],), {"price_gpu": 0.5}),
    "list_machine": ((4310,), {"price_gpu": 0.5, "price_disk": 0.1, "min_chunk": 1}),
    "set_defjob": ((4311,), {"price_gpu": 0.2, "image": "img/x"}),
    "list_volumes": (([4312, 4313],), {"size": 20, "price_disk": 0.2}),
    "list_volume": ((4314,), {"size": 20, "price_disk": 0.2}),
    "list_network_volume": ((4315,), {"price_disk": 0.2, "size": 30}),
    "clone_volume": ((4316, 4317), {"size": 40}),
    "take_snapshot": ((4318,), {"repo": "me/snap"}),
    "update_instance": ((4319,), {"image": "img/y", "onstart": "echo"}),
    "update_team_role": ((4320,), {"name": "ops", "permissions": {"api": {}}}),
    "update_scheduled_job": ((4321, {"x": 1}), {"frequency": "DAILY", "hour_of_the_day": 3}),
    "create_scheduled_job": (
        (1_800_000_000.0, 1_900_000_000.0, "/api/v0/instances/4322/", "PUT", {"state": "stopped"}, "DAILY", 4322),
        {"hour_of_the_day": 5},
    ),
    "create_endpoint": ((), {"endpoint_name": "ep", "max_workers": 4}),
    "update_endpoint": ((4323,), {"max_workers": 6}),
    "create_workergroup": ((), {"endpoint_name": "ep", "template_hash": "abc", "search_params": "gpu_ram>=20"}),
    "update_workergroup": ((4324,), {"launch_args": "--x"}),
    "show_invoices_v1": ((), {"limit": 5}),
    "show_instances_v1": (({"limit": 5, "order_by": [{"col": "id", "dir": "desc"}]},), {}),
    "search_benchmarks_v1": (({"limit": 5},), {}),
    "tfa_activate": ((), {"code": "123456", "secret": "s3"}),
    "tfa_delete": ((), {"code": "123456", "id_to_delete": 3}),
    "tfa_login": ((), {"code": "123456"}),
    "tfa_regen_codes": ((), {"code": "123456"}),
    "tfa_resend_sms": ((), {"secret": "s4", "phone_number": "+15555550100"}),
    "tfa_send_sms": ((), {"phone_number": "+15555550100"}),
    "tfa_update": ((), {"method_id": 9, "label": "phone"}),
    "set_user": (({"ssh_key": SSH_KEY, "username": "u2"},), {}),
    "create_api_key": (("ci", {"api": {"instance_read": {}}}), {}),
    "create_team_role": (("ops", {"api": {}}), {}),
    "create_template": (
        (),
        {"name": "t1", "image": "img/z", "image_tag": "1.0", "onstart_cmd": "echo", "disk_space": 30},
    ),
    "delete_template": ((), {"template_id": 4325}),
    "delete_overlay": ((), {"overlay_identifier": "ovl"}),
    "show_earnings": ((), {"start_date": "2026-01-01", "end_date": "2026-02-01", "machine_id": 4326}),
    "show_invoices": ((), {"start_date": "2026-01-01", "end_date": "2026-02-01"}),
    "fetch_contracts": ((), {"label": "job-1"}),
    "create_subaccount": (("sub@example.com", "sub", "pw-123"), {}),
    "add_network_disk": (([4327, 4328], "/mnt/net"), {"disk_id": 4329}),
    "join_cluster": ((4330, [4331, 4332]), {}),
    "remove_machine_from_cluster": ((4333, 4334), {"new_manager_id": 4335}),
    "create_cluster": (("10.0.0.0/24", 4336), {}),
    "invite_member": (("a@example.com", "member"), {}),
    "invite_team_member": (("b@example.com", "member"), {}),
    "transfer_credit": (("c@example.com", 2.5), {}),
    "prepay_instance": ((4337, 12.5), {}),
    "change_bid": ((4338,), {"price": 0.25}),
    "set_min_bid": ((4339,), {"price": 0.15}),
    "get_endpt_logs": ((4340,), {"level": 2, "tail": 50}),
    "get_wrkgrp_logs": ((4341,), {"level": 2, "tail": 50}),
    "update_workers": ((4342,), {"cancel": True}),
    "show_volumes": ((), {"type": "local"}),
    "create_volume": ((4343,), {"size": 25, "name": "vol"}),
    "create_network_volume": ((4344,), {"size": 25, "name": "nvol"}),
    "show_env_vars": ((), {"show_values": True}),
    "create_env_var": (("MY_VAR", "value-1"), {}),
    "update_env_var": (("MY_VAR", "value-2"), {}),
    "delete_env_var": (("MY_VAR",), {}),
    "create_overlay": ((4345, "ovl"), {}),
    "join_overlay": (("ovl", 4346), {}),
    "detach_ssh": ((4347, "4348"), {}),
    "show_instance_backups": ((), {"contract_id": 4349}),
    "destroy_instances": (([4350, 4351],), {}),
    "start_instances": (([4352, 4353],), {}),
    "stop_instances": (([4354, 4355],), {}),
    "accept_price_increase": ((4356,), {}),
    "reject_price_increase": ((4357,), {}),
    "update_template": (("hash1",), {"name": "t2", "image": "img/z", "ssh": True}),
    "set_api_key": (("k-second",), {}),
    "create_team": (("team-a",), {}),
    "show_team_role": (("ops",), {}),
    "remove_team_role": (("ops",), {}),
}


def generic_args(method: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Distinctive positional values for a method's required parameters (ints for ids, else strings)."""
    args: list[Any] = []
    for i, p in enumerate(list(inspect.signature(method).parameters.values())[1:]):
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        args.append(5000 + i if "id" in p.name or p.name in ("source", "dest") else f"{p.name}-v")
    return tuple(args), {}


def case(name: str, method: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return CASES.get(name) or generic_args(method)
