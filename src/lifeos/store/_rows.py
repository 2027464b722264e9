"""Stored rows to records: the same columns hold the same values in every backend.

A row is anything indexed by column name (``sqlite3.Row``, psycopg's dict rows); JSON
columns hold canonical JSON text.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from lifeos.store.base import (
    ArtifactRecord,
    CheckpointRecord,
    RunRecord,
    TaskRecord,
    TimelineEvent,
)

__all__ = [
    "Row",
    "artifact_record",
    "checkpoint_record",
    "event_record",
    "run_record",
    "task_record",
]


class Row(Protocol):
    """A stored row, indexed by column name."""

    def __getitem__(self, key: str, /) -> Any:
        """The value of column ``key``."""
        ...


def run_record(row: Row) -> RunRecord:
    """A run from its row."""
    return RunRecord(
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        status=row["status"],
        previous_status=row["previous_status"],
        description=row["description"],
        priority=row["priority"],
        max_cost_usd=row["max_cost_usd"],
        spent_cost_usd=row["spent_cost_usd"],
        max_loops=row["max_loops"],
        loop_count=row["loop_count"],
        message_count=row["message_count"],
        config=json.loads(row["config_json"]),
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        failed_at=row["failed_at"],
    )


def task_record(row: Row) -> TaskRecord:
    """A task from its row."""
    return TaskRecord(
        task_id=row["task_id"],
        run_id=row["run_id"],
        task_order=row["task_order"],
        description=row["description"],
        context_files=json.loads(row["context_files"]),
        required_artifact_ids=json.loads(row["required_artifact_ids"]),
        status=row["status"],
        result_artifact_ids=json.loads(row["result_artifact_ids"]),
        repair_attempt=row["repair_attempt"],
        consumed_tokens=row["consumed_tokens"],
        started_at=row["started_at"],
        locked_at=row["locked_at"],
        locked_by=row["locked_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def artifact_record(row: Row) -> ArtifactRecord:
    """An artifact (without its content) from its row."""
    return ArtifactRecord(
        artifact_id=row["artifact_id"],
        run_id=row["run_id"],
        file_path=row["file_path"],
        version_number=row["version_number"],
        supersedes_id=row["supersedes_id"],
        is_deleted=bool(row["is_deleted"]),
        kind=row["kind"],
        mime_type=row["mime_type"],
        checksum=row["checksum"],
        size_bytes=row["size_bytes"],
        metadata=json.loads(row["metadata_json"]),
        created_at=row["created_at"],
    )


def checkpoint_record(row: Row) -> CheckpointRecord:
    """A checkpoint from its row."""
    return CheckpointRecord(
        checkpoint_id=row["checkpoint_id"],
        run_id=row["run_id"],
        step_index=row["step_index"],
        step_id=row["step_id"],
        step_digest=row["step_digest"],
        status=row["status"],
        state_hash=row["state_hash"],
        policy_hash=row["policy_hash"],
        delta=json.loads(row["delta_json"]),
        info=json.loads(row["info_json"]),
        created_at=row["created_at"],
    )


def event_record(row: Row) -> TimelineEvent:
    """A timeline event from its row."""
    return TimelineEvent(
        event_id=row["event_id"],
        run_id=row["run_id"],
        task_id=row["task_id"],
        event_type=row["event_type"],
        event=json.loads(row["event_json"]),
        created_at=row["created_at"],
    )
