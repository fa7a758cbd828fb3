"""`make lock`: re-resolve VibeML's locks within pyproject.toml's ranges, with uv.

Two resolutions, because Unsloth caps transformers/trl/datasets below what the rest of VibeML runs with:

* ``src/vibeml/locks/main.txt``: VibeML with every extra but Unsloth, SkyPilot's runtime and the test tools. It is
  what ``make demo``, ``make test``, CI and rented machines of the trl-lora, qlora and full workflows install.
* ``src/vibeml/locks/unsloth.txt``: the training extra with Unsloth, for rented machines of the unsloth workflow.

Both are universal: one file for Linux, macOS and Windows and every Python from 3.10, each line with the
environment marker it applies to. Each Python gets the newest versions that support it (uv's default fork
strategy), so where a library dropped Python 3.10 (transformers 5.21, trl 1.15, numpy 2.3) the lock holds its
newest release for 3.10 beside the newest for 3.11+. The resolution asks the
default registry only: no index, find-links folder or configuration of this machine goes into it or into the
files, and every line is ``name==version`` with ``# via`` notes (``vibeml.locks`` reads those to derive what a
rented machine installs).

Usage: ``python tools/lock.py [--uv PATH] [--check]`` (``--check``: resolve into a temporary folder and fail if
the result differs from the committed locks, without ``--upgrade``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "src" / "vibeml" / "locks"
LOWEST_PYTHON = "3.10"

#: lock file → (extras of pyproject.toml, further requirement files)
RESOLUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "main.txt": (("train", "dev", "qlora", "speed", "keyring", "sky"), ("requirements/sky-runtime.in",)),
    "unsloth.txt": (("train", "unsloth"), ()),
}

#: Configuration that would point uv at another index or a local folder: never part of a lock.
_UV_ENV = (
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONFIG_FILE",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_PYTHON",
)


def compile_lock(uv: str, name: str, out: Path, *, upgrade: bool) -> None:
    extras, inputs = RESOLUTIONS[name]
    cmd = [
        uv,
        "pip",
        "compile",
        "pyproject.toml",
        *inputs,
        "--quiet",
        "--no-config",
        "--universal",
        "--python-version",
        LOWEST_PYTHON,
        "--constraint",
        "requirements/holds.in",
        "--override",
        "requirements/overrides.in",
        "--custom-compile-command",
        "make lock",
        "--output-file",
        str(out),
    ]
    for extra in extras:
        cmd += ["--extra", extra]
    if upgrade:
        cmd.append("--upgrade")
    env = {k: v for k, v in os.environ.items() if k not in _UV_ENV}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv") or "uv", help="the uv executable")
    parser.add_argument("--check", action="store_true", help="fail if the committed locks are not what uv resolves")
    args = parser.parse_args(argv)
    if not args.check:
        for name in RESOLUTIONS:
            compile_lock(args.uv, name, LOCKS / name, upgrade=True)
            print(f"wrote {(LOCKS / name).relative_to(ROOT)}")
        print("now run `make test`: it installs and tests exactly these versions")
        return 0
    changed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in RESOLUTIONS:
            out = Path(tmp) / name
            shutil.copy(LOCKS / name, out)  # the committed versions are the preference
            compile_lock(args.uv, name, out, upgrade=False)
            old, new = (LOCKS / name).read_text().splitlines(), out.read_text().splitlines()
            diff = list(difflib.unified_diff(old, new, f"committed/{name}", f"resolved/{name}", lineterm=""))
            if diff:
                changed += 1
                print("\n".join(diff))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
