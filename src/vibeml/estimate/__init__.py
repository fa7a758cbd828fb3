"""Estimation: memory, speed, time, cost and the planner. Pure functions over pydantic models, no I/O."""

from __future__ import annotations

from vibeml.estimate.cost import (
    CostEstimator,
    DatasetStats,
    JobEstimate,
    estimate_job,
    shape_from_request,
    workload_from_request,
)
from vibeml.estimate.memory import MemoryBreakdown, MemoryEstimate, TrainingShape, estimate_memory
from vibeml.estimate.planner import Plan, PlanConstraints, PlanOption, RejectedOption, plan_request, plan_training
from vibeml.estimate.throughput import (
    SetupProfile,
    ThroughputEstimate,
    TimeEstimate,
    Workload,
    estimate_throughput,
    estimate_training_time,
)

__all__ = [
    "CostEstimator",
    "DatasetStats",
    "JobEstimate",
    "MemoryBreakdown",
    "MemoryEstimate",
    "Plan",
    "PlanConstraints",
    "PlanOption",
    "RejectedOption",
    "SetupProfile",
    "ThroughputEstimate",
    "TimeEstimate",
    "TrainingShape",
    "Workload",
    "estimate_job",
    "estimate_memory",
    "estimate_throughput",
    "estimate_training_time",
    "plan_request",
    "plan_training",
    "shape_from_request",
    "workload_from_request",
]
