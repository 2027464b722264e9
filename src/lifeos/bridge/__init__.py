"""Bridges from outside job systems to the spine; :mod:`lifeos.bridge.openclaw` is OpenClaw's."""

from __future__ import annotations

from lifeos.bridge.openclaw import JobPayload, JobResult, job_result, result_payload

__all__ = ["JobPayload", "JobResult", "job_result", "result_payload"]
