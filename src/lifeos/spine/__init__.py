"""LoopSpine: one governed run of a backlog task, from hydrate to a landed commit.

A run moves through fixed phases — hydrate, policy, design, build, review, steward,
close — and stops in one terminal state (LANDED, BLOCKED, FAILED, PAUSED,
BUDGET_EXCEEDED, ESCALATED) with its reason codes. Every side effect inside a phase
(agent calls, tool calls, commands, commits) is journaled in the store before the run
moves on, and a checkpoint closes every phase, so ``lifeos spine resume`` continues a
crashed or paused run without repeating finished work.
"""

from lifeos.spine.controller import Spine, SpineDeps, SpineOutcome
from lifeos.spine.model import EXIT_FOR_STATE, PHASES, SpineState

__all__ = ["EXIT_FOR_STATE", "PHASES", "Spine", "SpineDeps", "SpineOutcome", "SpineState"]
