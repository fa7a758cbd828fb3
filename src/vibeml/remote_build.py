"""A wheel of the exact VibeML that is running: what a rented machine installs.

The package named ``vibeml`` on PyPI is not this project, so no default ever installs VibeML by name.
Instead the backends ship *this* build: :func:`ship_wheel` zips the files of the imported ``vibeml``
package (an editable install from ``src/`` or a normal site-packages install alike; ``__pycache__`` and
``*.pyc`` left out) together with its installed metadata (``METADATA`` verbatim, so the wheel declares
exactly the installed VibeML's dependencies and extras, and ``entry_points.txt``) into a pure-Python
``py3-none-any`` wheel with a correct ``RECORD``.

The wheel is cached under ``<cache dir>/wheels/<content hash>/``: the same files give the same wheel
(not rebuilt), one changed file gives another hash. Entries are written in a fixed order with fixed
timestamps, so the bytes depend on the content alone. Only the standard library is used.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vibeml.exceptions import ConfigurationError
from vibeml.safe_paths import atomic_write_bytes

__all__ = ["SHIP", "ShippedWheel", "build_wheel", "is_ship", "ship_wheel"]

#: ``VIBEML_REMOTE_INSTALL`` value (the default) that ships the running build.
SHIP = "ship"
_PROJECT = "vibeml"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
_GENERATOR = "vibeml.remote_build"


def is_ship(spec: str) -> bool:
    """Whether a ``VIBEML_REMOTE_INSTALL`` value asks for the running build to be shipped."""
    return spec.strip().lower() == SHIP


@dataclass(frozen=True)
class ShippedWheel:
    """A built wheel: its path, file name, content hash and version."""

    path: Path
    content_hash: str
    version: str

    @property
    def filename(self) -> str:
        return self.path.name


def _package_files(package_dir: Path) -> list[tuple[str, bytes]]:
    """(archive name, bytes) of every file of the package, sorted, caches left out."""
    out: list[tuple[str, bytes]] = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(package_dir.parent).as_posix()
            out.append((rel, path.read_bytes()))
    return sorted(out)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _distribution() -> metadata.Distribution:
    """The installed VibeML's metadata: a ``.dist-info`` (with ``METADATA``) wherever one is on the path, before
    a setuptools ``.egg-info`` folder (``PKG-INFO`` only) that an editable build leaves beside the sources."""
    found = list(metadata.distributions(name=_PROJECT))
    for dist in found:
        if dist.read_text("METADATA"):
            return dist
    if found:
        return found[0]
    try:
        return metadata.distribution(_PROJECT)
    except metadata.PackageNotFoundError as exc:
        raise ConfigurationError(
            "VibeML's package metadata is missing, so the running build cannot be shipped to a rented machine",
            {},
            "Install VibeML (`make install`, or `pip install -e .`), or set VIBEML_REMOTE_INSTALL to a "
            "requirement of your own published build.",
        ) from exc


def build_wheel(cache_dir: Path, *, package_dir: Path | None = None, metadata_text: str | None = None) -> ShippedWheel:
    """Build (or find in the cache) the wheel of ``package_dir`` (default: the imported ``vibeml``) with
    ``metadata_text`` (default: the installed VibeML's ``METADATA``).

    Raises:
        ConfigurationError: VibeML's metadata is missing, or the wheel cannot be written.
    """
    import vibeml

    pkg = Path(package_dir) if package_dir is not None else Path(vibeml.__file__).resolve().parent
    entry_points: str | None = None
    if metadata_text is None:
        dist = _distribution()
        metadata_text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")  # the same core metadata
        entry_points = dist.read_text("entry_points.txt")
        if not metadata_text:
            raise ConfigurationError(
                "VibeML's installed METADATA cannot be read, so the running build cannot be shipped",
                {},
                "Reinstall VibeML (`make install`).",
            )
    name_match = re.search(r"^Name:\s*(\S+)\s*$", metadata_text, re.M)
    version_match = re.search(r"^Version:\s*(\S+)\s*$", metadata_text, re.M)
    if name_match is None or version_match is None:
        raise ConfigurationError("VibeML's METADATA names no Name or Version", {}, "Reinstall VibeML.")
    name = re.sub(r"[-_.]+", "_", name_match.group(1)).lower()
    version = version_match.group(1)
    dist_info = f"{name}-{version}.dist-info"
    wheel_meta = f"Wheel-Version: 1.0\nGenerator: {_GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = _package_files(pkg)
    entries.append((f"{dist_info}/METADATA", metadata_text.encode("utf-8")))
    entries.append((f"{dist_info}/WHEEL", wheel_meta.encode("utf-8")))
    if entry_points:
        entries.append((f"{dist_info}/entry_points.txt", entry_points.encode("utf-8")))

    content = hashlib.sha256()
    for arcname, data in entries:
        content.update(arcname.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    digest = content.hexdigest()[:24]
    target = Path(cache_dir) / "wheels" / digest / f"{name}-{version.replace('-', '_')}-py3-none-any.whl"
    if target.is_file():
        return ShippedWheel(target, digest, version)

    record_name = f"{dist_info}/RECORD"
    record = "".join(f"{a},{_record_hash(d)},{len(d)}\n" for a, d in entries) + f"{record_name},,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in [*entries, (record_name, record.encode("utf-8"))]:
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, buf.getvalue(), mode=0o644)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write VibeML's wheel to {target}: {exc}",
            {"path": str(target)},
            "Free some disk space or make VIBEML_HOME's cache folder writable.",
        ) from exc
    return ShippedWheel(target, digest, version)


def ship_wheel(cache_dir: Path) -> ShippedWheel:
    """The wheel of the running VibeML (built once per content, then taken from ``cache_dir``)."""
    return build_wheel(cache_dir)
