"""The wheel of the running VibeML (vibeml.remote_build): what a rented machine installs instead of a name."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import vibeml
from vibeml.remote_build import build_wheel, is_ship, ship_wheel

PACKAGE = Path(vibeml.__file__).resolve().parent


def _uv() -> str:
    found = Path(sys.executable).parent / "uv"
    uv = str(found) if found.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (the venv from `make install` has it)")
    return uv


def test_the_wheel_installs_offline_and_is_exactly_this_vibeml(tmp_path: Path) -> None:
    wheel = ship_wheel(tmp_path / "cache")
    assert wheel.path.parent.parent == tmp_path / "cache" / "wheels" and wheel.path.name.endswith("-py3-none-any.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    res = subprocess.run(
        [_uv(), "pip", "install", "--offline", "--python", str(python), "--no-deps", str(wheel.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    probe = (
        "import json, vibeml, importlib.metadata as m; d = m.distribution('vibeml'); "
        "print(json.dumps([vibeml.__version__, vibeml.__file__, d.requires, d.version, "
        "sorted(e.name for e in d.entry_points)]))"
    )
    out = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    version, init, requires, dist_version, scripts = json.loads(out.stdout)
    installed = Path(init).parent
    assert installed != PACKAGE and installed.is_relative_to(venv)  # -I: not this checkout's source
    assert version == vibeml.__version__ == dist_version == wheel.version
    here = metadata.distribution("vibeml")
    assert requires == here.requires and scripts == sorted(e.name for e in here.entry_points)
    for rel in ("backends/vast/remote.py", "locks/main.txt", "trainer/__main__.py"):
        assert (installed / rel).read_bytes() == (PACKAGE / rel).read_bytes(), rel
    with zipfile.ZipFile(wheel.path) as zf:
        names = zf.namelist()
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        record = zf.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
        rows = [line.split(",") for line in record.splitlines()]
        assert {r[0] for r in rows} == set(names)
        for name, digest, size in rows:  # every file's hash and size as RECORD says (RECORD itself: empty)
            if name.endswith("/RECORD"):
                assert digest == size == ""
                continue
            data = zf.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={want}", len(data)), name


def test_same_content_same_wheel_and_one_changed_file_another(tmp_path: Path) -> None:
    meta = metadata.distribution("vibeml").read_text("METADATA")
    pkg = tmp_path / "src" / "vibeml"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cache = tmp_path / "cache"
    first = build_wheel(cache, package_dir=pkg, metadata_text=meta)
    stamp = first.path.stat().st_mtime_ns
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"\0cache")  # caches are not content
    again = build_wheel(cache, package_dir=pkg, metadata_text=meta)
    assert again == first and first.path.stat().st_mtime_ns == stamp  # found, not rebuilt
    elsewhere = build_wheel(tmp_path / "other-cache", package_dir=pkg, metadata_text=meta)
    assert elsewhere.content_hash == first.content_hash
    assert elsewhere.path.read_bytes() == first.path.read_bytes()  # the bytes depend on the content alone

    runner = pkg / "backends" / "vast" / "remote.py"
    runner.write_text(runner.read_text() + "\n# changed\n")
    changed = build_wheel(cache, package_dir=pkg, metadata_text=meta)
    assert changed.content_hash != first.content_hash and changed.path != first.path
    assert first.path.exists()  # the old build stays where it was
    with zipfile.ZipFile(changed.path) as zf:
        assert zf.read("vibeml/backends/vast/remote.py").endswith(b"# changed\n")
    assert ship_wheel(cache).content_hash == ship_wheel(tmp_path / "c2").content_hash  # the running one: stable


def test_ship_is_the_default_keyword() -> None:
    assert is_ship("ship") and is_ship(" SHIP ") and not is_ship("") and not is_ship("vibeml-fork==1.2")


def test_an_editable_builds_egg_info_beside_the_sources_does_not_hide_the_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pip/uv install -e .` with setuptools leaves src/vibeml.egg-info (PKG-INFO, no METADATA) on the path;
    # whichever the path lists first, the wheel gets the installed core metadata.
    real = next(d for d in metadata.distributions(name="vibeml") if d.read_text("METADATA"))
    egg = tmp_path / "src" / "vibeml.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text(real.read_text("METADATA") or "", encoding="utf-8")
    egg_dist = metadata.PathDistribution(egg)
    for order in ([egg_dist, real], [egg_dist]):
        monkeypatch.setattr(metadata, "distributions", lambda order=order, **_: iter(order))
        monkeypatch.setattr(metadata, "distribution", lambda _name, order=order: order[0])  # the path's first
        wheel = build_wheel(tmp_path / f"cache-{len(order)}")
        with zipfile.ZipFile(wheel.path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            assert zf.read(name).decode() == real.read_text("METADATA")
        assert wheel.version == vibeml.__version__
