"""`vibeml skill`: the agent skill (SKILL.md) ships with the package and the command prints it."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from importlib import resources
from pathlib import Path

from typer.testing import CliRunner

import vibeml
from vibeml.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
SKILL = Path(vibeml.__file__).resolve().parent / "SKILL.md"


def test_skill_prints_the_packaged_skill_and_its_path() -> None:
    res = runner.invoke(app, ["skill"])
    assert res.exit_code == 0, res.output
    assert res.output == SKILL.read_text(encoding="utf-8")
    assert res.output.startswith("---\nname: vibeml\ndescription: ")  # an agent skill's front matter
    for must in ("dry_run=true", "confirmation_token", "expected cost", "get_job_status", "stop_job", "output_dir"):
        assert must in res.output, must
    path = runner.invoke(app, ["skill", "--path"])
    assert path.exit_code == 0 and Path(path.output.strip()).resolve() == SKILL


def test_skill_md_is_package_data() -> None:
    """setuptools ships it in the wheel and the sdist: pyproject's package-data names it (as it names the locks)."""
    from setuptools.config.pyprojecttoml import read_configuration

    config = read_configuration(ROOT / "pyproject.toml")
    patterns = config["tool"]["setuptools"]["package-data"]["vibeml"]
    assert any(fnmatch.fnmatch("SKILL.md", p) for p in patterns), patterns
    assert (resources.files("vibeml") / "SKILL.md").is_file()


def test_skill_loads_no_heavy_modules() -> None:
    probe = (
        "import sys; from vibeml.cli.main import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['skill']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'transformers', 'sky', 'vibeml.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
