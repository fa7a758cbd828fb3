"""Measured: the CLI, the MCP server and a local launch never import SkyPilot; a missing extra is a clear error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vibeml.exceptions import ConfigurationError


def _run(code: str, tmp_path: Path) -> dict[str, object]:
    env = {
        "VIBEML_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_cli_and_registry_do_not_import_sky(tmp_path: Path) -> None:
    out = _run(
        """
        import json, sys
        import vibeml.cli.main
        import vibeml.cli.sky
        import vibeml.backends.skypilot, vibeml.backends.skypilot.task, vibeml.backends.skypilot.catalog
        from vibeml.backends.registry import default_registry
        from vibeml.settings import Settings
        names = default_registry(Settings.from_env()).names()
        mcp = False
        try:
            import importlib.util
            if importlib.util.find_spec("vibeml.mcp.server"):
                import vibeml.mcp.server
                mcp = True
        except ImportError:
            pass
        print(json.dumps({"sky": sorted(m for m in sys.modules if m == "sky" or m.startswith("sky.")),
                          "names": names, "mcp": mcp}))
    """,
        tmp_path,
    )
    assert out["sky"] == []
    assert "skypilot" in out["names"]  # type: ignore[operator]


@pytest.mark.needs_train
@pytest.mark.slow
def test_local_launch_does_not_import_sky(tmp_path: Path, demo_assets_dir: Path) -> None:
    from vibeml.demo.assets import ensure_demo_assets

    assets = ensure_demo_assets(demo_assets_dir)
    out = _run(
        f"""
        import json, sys, time
        from vibeml.client import VibeML, build_request
        svc = VibeML()
        req = build_request(model={str(assets.model_dir)!r}, dataset={str(assets.dataset_path)!r}, max_steps=2,
                            backend="local")
        rec = svc.launch(req)
        svc.get_status(rec.job_id)
        list(svc.logs(rec.job_id, tail=5))
        svc.stop(rec.job_id, 5.0)
        print(json.dumps({{"sky": sorted(m for m in sys.modules if m == "sky" or m.startswith("sky."))}}))
    """,
        tmp_path,
    )
    assert out["sky"] == []


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from vibeml.backends.skypilot.task import import_sky

    monkeypatch.setitem(sys.modules, "sky", None)  # what `import sky` sees without the extra
    with pytest.raises(ConfigurationError) as info:
        import_sky()
    assert "pip install 'vibeml[sky]'" in (info.value.recovery_suggestion or "")
    assert info.value.exit_code == 2


def test_backend_without_sky_fails_on_use_not_on_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vibeml.backends.skypilot import SkyPilotBackend
    from vibeml.models import SkyPilotHandle, SkyPilotHandleData
    from vibeml.settings import Settings

    monkeypatch.setitem(sys.modules, "sky", None)
    backend = SkyPilotBackend(Settings.from_env())
    handle = SkyPilotHandle(
        job_id="vml-x",
        backend_job_id="vibeml-vml-x",
        job_dir=str(tmp_path),
        data=SkyPilotHandleData(
            mode="cluster",
            cluster_name="vibeml-vml-x",
            request_id="req-1",
            num_nodes=1,
            hourly_rate=1.0,
            hourly_cap=1.2,
            remote_output_dir="vibeml-job/output",
            remote_checkpoint_dir="vibeml-job/checkpoints",
            local_output_dir=str(tmp_path / "output"),
            events_path=str(tmp_path / "events.jsonl"),
            launched_at=0.0,
        ),
    )
    with pytest.raises(ConfigurationError, match="SkyPilot"):
        backend.status(handle)


def test_sky_is_installed_for_the_test_suite() -> None:
    """`make test` installs the extra, so the SkyPilot tests run rather than skip."""
    if importlib.util.find_spec("sky") is None:
        pytest.skip("SkyPilot is an optional extra (pip install 'vibeml[sky]'); `make install` adds it for tests")
    from importlib.metadata import version

    assert version("skypilot") == "0.14.1"
