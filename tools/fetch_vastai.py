"""Fetch the official Vast.ai SDK the wire-conformance test compares against, pinned by hash.

``vastai`` cannot join the lock's test extra: 1.9.1 pins ``cryptography==49.0.0`` (the lock holds 50.0.2,
which the rest of VibeML resolves to) and ``pillow==12.2.0``/``pycares==4.11.0`` with ``borb`` and ``aiohttp``
besides. The test only needs its source: this downloads the two wheels below (``pip download --no-deps``,
sha256-checked) and unpacks them into ``.cache/vastai-1.9.1/`` (git-ignored), which
``tests/vast/test_vast_conformance.py`` puts on ``sys.path``. Its other imports (``requests``,
``python-dateutil``) are in the lock already.

Usage: ``python tools/fetch_vastai.py`` (needs the package registry once).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "vastai-1.9.1"

#: name==version → sha256 of its wheel (vastai 1.9.1 is the release FACTS.md describes)
WHEELS = {
    "vastai==1.9.1": "426dee7da85ce29b798c57c55d23178242c7da5d27b39958a5cbd86dcbbec0f7",
    "pyparsing==3.3.3": "ece8c00a69cf01b45d0b1dedabb469c90d8caf996d4fda40f147627a122849a4",
}


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, digest in WHEELS.items():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    spec,
                    "-d",
                    tmp,
                ],
                check=True,
            )
            name = spec.split("==")[0]
            [wheel] = [p for p in Path(tmp).glob("*.whl") if p.name.lower().startswith(name + "-")]
            got = hashlib.sha256(wheel.read_bytes()).hexdigest()
            if got != digest:
                print(f"{wheel.name}: sha256 {got}, expected {digest}", file=sys.stderr)
                return 1
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(TARGET)
            print(f"unpacked {wheel.name} into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
