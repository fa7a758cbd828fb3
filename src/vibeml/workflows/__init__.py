"""Training workflows and the programs they render."""

from vibeml.workflows.registry import (
    TrainingProgram,
    Workflow,
    get_workflow,
    list_workflows,
    register_workflow,
    render_program,
)

__all__ = [
    "TrainingProgram",
    "Workflow",
    "get_workflow",
    "list_workflows",
    "register_workflow",
    "render_program",
]
