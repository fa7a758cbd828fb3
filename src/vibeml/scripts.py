"""Training script generation (API stability: **beta**).

The names the API reference documents under ``vibeml.scripts``, re-exported from
:mod:`vibeml.workflows.script` (the one implementation) and imported when first used::

    from vibeml.scripts import ScriptGenerator

    script = ScriptGenerator().generate_script(
        workflow="unsloth", model="meta-llama/Llama-3.2-1B", dataset="tatsu-lab/alpaca", max_steps=1000
    )

The generated program is standalone: its settings travel as data (a JSON block it decodes), never spliced
into its code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vibeml._lazy import lazy_exports

_EXPORTS = {
    "ScriptGenerator": "vibeml.workflows.script",
    "decode_script_config": "vibeml.workflows.script",
    "encode_config": "vibeml.workflows.script",
}

__all__ = [
    "ScriptGenerator",
    "decode_script_config",
    "encode_config",
]

if TYPE_CHECKING:  # pragma: no cover
    from vibeml.workflows.script import ScriptGenerator, decode_script_config, encode_config


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
