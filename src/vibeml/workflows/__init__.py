"""Training workflows, the programs they render, and standalone training scripts."""

from vibeml.workflows.registry import (
    TrainingProgram,
    Workflow,
    WorkflowEstimate,
    get_workflow,
    list_workflows,
    register_workflow,
    render_program,
    workflow_estimate,
)
from vibeml.workflows.script import ScriptGenerator

__all__ = [
    "ScriptGenerator",
    "TrainingProgram",
    "Workflow",
    "WorkflowEstimate",
    "get_workflow",
    "list_workflows",
    "register_workflow",
    "render_program",
    "workflow_estimate",
]
