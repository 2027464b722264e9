"""lifeos.yaml: the repository's LifeOS settings, typed and validated.

The top-level keys are fixed — ``version``, ``store``, ``models``, ``policy``,
``budget``, ``spine``, ``backlog``, ``commands``, ``evidence`` — and anything
else is refused, naming the key and its line. Environment variables
``LIFEOS_<SECTION>_<KEY>`` override a section's key (``LIFEOS_BACKLOG_MAX_WIP=3``);
``LIFEOS_STORE_URL`` overrides ``store``. Secrets never live in the file: a key
that looks like one (``api_key``, ``password``, ``token``, ``secret``) must be
given as the name of an environment variable (``api_key_env``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.errors import ConfigError, ReasonCode

__all__ = [
    "CONFIG_FILE",
    "SECTIONS",
    "LoadedConfig",
    "find_config",
    "load_config",
    "starter_config",
]

CONFIG_FILE = "lifeos.yaml"
SECTIONS = (
    "version",
    "store",
    "models",
    "policy",
    "budget",
    "spine",
    "backlog",
    "commands",
    "evidence",
)
_SECRET_KEYS = re.compile(r"^(api_?key|password|passwd|secret|token|auth_token)$", re.I)
_URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I)


def _models() -> Any:
    """Build the pydantic models on first use (pydantic is not on the CLI's start path)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class Section(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class Backlog(Section):
        path: str = "config/backlog.yaml"
        max_wip: int = Field(default=2, ge=1)

    class Pricing(Section):
        input_per_mtok: float = Field(default=0.0, ge=0)
        output_per_mtok: float = Field(default=0.0, ge=0)
        cache_read_per_mtok: float = Field(default=0.0, ge=0)
        cache_write_per_mtok: float = Field(default=0.0, ge=0)

    class Model(Section):
        provider: Literal["openai", "anthropic", "replay", "command", "opencode"]
        model: str | None = None
        endpoint: str | None = None
        api_key_env: str | None = None
        pricing: Pricing | None = None
        cassette: str | None = None
        command: list[str] | None = None
        format: Literal["opencode", "claude", "codex", "text"] = "text"
        timeout_s: float = Field(default=120.0, gt=0)
        max_tokens: int | None = Field(default=None, ge=1)

    class Config(Section):
        version: Literal[1] = 1
        store: str | None = None
        models: dict[str, Model] = Field(default_factory=dict)
        policy: dict[str, Any] | None = None
        budget: dict[str, Any] = Field(default_factory=dict)
        spine: dict[str, Any] = Field(default_factory=dict)
        backlog: Backlog = Field(default_factory=Backlog)
        commands: dict[str, str | list[str]] = Field(default_factory=dict)
        evidence: dict[str, Any] = Field(default_factory=dict)

    return Config


@dataclass
class LoadedConfig:
    """The effective settings and where they came from."""

    data: dict[str, Any]
    """Effective settings: the file, then environment overrides, then defaults."""
    source: Path | None
    """The file read, or None when LifeOS runs on its defaults."""
    overrides: list[str]
    """The environment variables that changed a setting, sorted."""

    @property
    def policy(self) -> dict[str, Any] | None:
        """The ``policy:`` section, or None when there is none."""
        value = self.data.get("policy")
        return value if isinstance(value, dict) else None


def find_config(repo_root: Path, explicit: Path | None = None) -> Path | None:
    """Return the config file to read: ``explicit``, else ``lifeos.yaml`` at the root."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file", ReasonCode.CONFIG_MISSING)
        return explicit
    candidate = repo_root / CONFIG_FILE
    return candidate if candidate.is_file() else None


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    import yaml

    used = []
    for name in sorted(env):
        if not name.startswith("LIFEOS_"):
            continue
        rest = name[len("LIFEOS_") :].lower()
        if rest in ("store", "store_url"):
            data["store"] = env[name]
            used.append(name)
            continue
        section, _, key = rest.partition("_")
        if section not in SECTIONS or not key or section in ("version", "store"):
            continue
        try:
            value = yaml.safe_load(env[name])
        except yaml.YAMLError:
            value = env[name]
        current = data.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"{name}: section '{section}' is not a mapping")
        current[key] = value
        used.append(name)
    return used


def _check_secrets(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if (
                value is not None
                and not isinstance(value, dict | list)
                and _SECRET_KEYS.match(str(key))
            ):
                raise ConfigError(
                    f"key '{where}' holds a secret; name an environment variable with "
                    f"'{key}_env' instead"
                )
            _check_secrets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_secrets(value, f"{path}[{i}]")


def load_config(
    repo_root: Path,
    explicit: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load, override and validate the repository's settings.

    Args:
        repo_root: where to look for ``lifeos.yaml``.
        explicit: a file given with ``--config``; it must exist.
        env: environment variables (``os.environ`` when None).

    Raises:
        ConfigError: the file does not parse or validate (file, line and key named).
    """
    from pydantic import ValidationError

    from lifeos.yamlio import YamlDocument, load_yaml_file, validation_message

    source = find_config(repo_root, explicit)
    doc = load_yaml_file(source, ConfigError) if source else YamlDocument({}, "(defaults)")
    raw = doc.data if doc.data is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{doc.source}: the top level must be a mapping of sections")
    for key in raw:
        if key not in SECTIONS:
            line = doc.line_of((key,))
            where = f"{doc.source}:{line}" if line else doc.source
            raise ConfigError(
                f"{where}: unknown top-level key '{key}' (allowed: {', '.join(SECTIONS)})"
            )
    _check_secrets(raw, "")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    overrides = _apply_env(data, os.environ if env is None else env)
    store = data.get("store")
    from_url_var = "LIFEOS_STORE_URL" in overrides and raw.get("store") != store
    for value, trusted in ((raw.get("store"), False), (store, from_url_var)):
        if isinstance(value, str) and _URL_CREDENTIALS.match(value) and not trusted:
            raise ConfigError(
                "key 'store' carries credentials; put the URL in LIFEOS_STORE_URL instead"
            )
    try:
        model = _models().model_validate(data)
    except ValidationError as exc:
        message = validation_message(exc, doc, data)
        loc = [str(p) for p in exc.errors(include_url=False)[0]["loc"]]
        var = "LIFEOS_" + "_".join(loc[:2]).upper()
        if var in overrides:
            message += f" (set by {var})"
        raise ConfigError(message) from None
    effective = model.model_dump(mode="json")
    return LoadedConfig(data=effective, source=source, overrides=overrides)


def starter_config() -> str:
    """The commented lifeos.yaml that ``lifeos init`` writes."""
    return _STARTER


_STARTER = """\
# lifeos.yaml — LifeOS settings for this repository.
# Every top-level key is optional; unknown keys are refused.
# Environment variables LIFEOS_<SECTION>_<KEY> override a section's key,
# for example LIFEOS_BACKLOG_MAX_WIP=3. Secrets never go in this file:
# name the environment variable that holds one (for example api_key_env).
version: 1

# Where runs, the journal and the ledger are stored. Default: .lifeos/lifeos.db
# at the repository root. A PostgreSQL URL must come from LIFEOS_STORE_URL.
# store: .lifeos/lifeos.db

# Which model plays which role, and what it costs per million tokens.
models: {}
#  builder:
#    provider: openai        # openai | anthropic | replay | command
#    model: gpt-4.1
#    endpoint: https://api.openai.com/v1
#    api_key_env: OPENAI_API_KEY
#    pricing: {input_per_mtok: 2.0, output_per_mtok: 8.0}
#  reviewer:
#    provider: replay        # recorded answers, offline
#    cassette: cassettes/reviewer.jsonl

# The diff gate's policy. Without a policy section every command that gates
# stops with POLICY_MISSING. 'code' allows src/, tests/ and docs/.
policy:
  profile: code

# Per-run and daily caps on tokens, cost and agent calls.
budget: {}
#  run_tokens: 200000
#  run_cost_usd: 2.00

# LoopSpine: repair attempts, human approvals, the builder and the reviewers.
spine: {}

# The backlog LifeOS takes tasks from, and how many may be in progress at once.
backlog:
  path: config/backlog.yaml
  max_wip: 2

# Commands the native builder and acceptance checks may run, by name.
commands: {}
#  test: ["python", "-m", "pytest", "-q"]

# Evidence bundle settings.
evidence: {}
"""
