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

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeos.errors import ConfigError, ReasonCode

__all__ = [
    "BUDGET_KEYS",
    "JOB_CAPS",
    "CONFIG_FILE",
    "SECTIONS",
    "LoadedConfig",
    "find_config",
    "job_cap_problem",
    "load_config",
    "starter_config",
    "validate_budget",
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


class _Invalid(Exception):
    """A value that does not fit: where (the key path) and what is wrong."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


_PROVIDERS = ("openai", "anthropic", "replay", "command", "opencode")
_FORMATS = ("opencode", "claude", "codex", "text")
_PRICES = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


def _mapping(value: Any, loc: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(loc, "should be a mapping")
    return value


def _known(value: dict[str, Any], allowed: tuple[str, ...], loc: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            raise _Invalid((*loc, str(key)), "unknown key")


def _str(value: Any, loc: tuple[str, ...], optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Invalid(loc, "should be a valid string")
    return value


def _int(value: Any, loc: tuple[str, ...], minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(loc, "should be a valid integer")
    if minimum is not None and value < minimum:
        raise _Invalid(loc, f"should be greater than or equal to {minimum}")
    return value


def _number(value: Any, loc: tuple[str, ...], *, above: float | None = None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Invalid(loc, "should be a valid number")
    if above is not None and not value > above:
        raise _Invalid(loc, f"should be greater than {above:g}")
    if value < 0:
        raise _Invalid(loc, "should be greater than or equal to 0")
    return float(value)


def _one_of(value: Any, choices: tuple[str, ...], loc: tuple[str, ...]) -> str:
    if value not in choices:
        raise _Invalid(loc, f"should be one of {', '.join(choices)}")
    return str(value)


def _opencode_config(value: Any, loc: tuple[str, ...]) -> dict[str, Any] | None:
    """OpenCode's own configuration (its ``opencode.json`` as a mapping), passed to the
    server inline: a mapping with string keys that JSON can carry (no YAML dates)."""
    if value is None:
        return None
    config = _mapping(value, loc)

    def check(node: Any, where: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise _Invalid((*where, str(key)), "should have string keys")
                check(item, (*where, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                check(item, (*where, str(index)))
        elif isinstance(node, float) and not math.isfinite(node):
            raise _Invalid(where, "should be a finite number")
        elif node is not None and not isinstance(node, str | int | float | bool):
            raise _Invalid(
                where,
                f"should be JSON (a string, number, list or mapping), not {type(node).__name__}",
            )

    check(config, loc)
    return config


def _model(value: Any, loc: tuple[str, ...]) -> dict[str, Any]:
    spec = _mapping(value, loc)
    allowed = (
        "provider", "model", "endpoint", "api_key_env", "pricing", "cassette", "command",
        "format", "timeout_s", "max_tokens", "binary", "opencode_config",
    )  # fmt: skip
    _known(spec, allowed, loc)
    if "provider" not in spec:
        raise _Invalid((*loc, "provider"), "required key is missing")
    pricing = spec.get("pricing")
    if pricing is not None:
        prices = _mapping(pricing, (*loc, "pricing"))
        _known(prices, _PRICES, (*loc, "pricing"))
        pricing = {k: _number(prices.get(k, 0.0), (*loc, "pricing", k)) for k in _PRICES}
    command = spec.get("command")
    if command is not None and (
        not isinstance(command, list) or not all(isinstance(c, str) for c in command)
    ):
        raise _Invalid((*loc, "command"), "should be a list of strings")
    max_tokens = spec.get("max_tokens")
    provider = _one_of(spec["provider"], _PROVIDERS, (*loc, "provider"))
    model = _str(spec.get("model"), (*loc, "model"))
    if provider == "opencode" and model is not None:
        provider_id, _, model_id = model.partition("/")
        if not provider_id or not model_id:
            raise _Invalid((*loc, "model"), "should be written providerID/modelID")
    binary = _str(spec.get("binary", "opencode"), (*loc, "binary"), False)
    if not binary:
        raise _Invalid((*loc, "binary"), "should not be empty")
    return {
        "api_key_env": _str(spec.get("api_key_env"), (*loc, "api_key_env")),
        "binary": binary,
        "cassette": _str(spec.get("cassette"), (*loc, "cassette")),
        "command": command,
        "endpoint": _str(spec.get("endpoint"), (*loc, "endpoint")),
        "format": _one_of(spec.get("format", "text"), _FORMATS, (*loc, "format")),
        "max_tokens": None if max_tokens is None else _int(max_tokens, (*loc, "max_tokens"), 1),
        "model": model,
        "opencode_config": _opencode_config(spec.get("opencode_config"), (*loc, "opencode_config")),
        "pricing": pricing,
        "provider": provider,
        "timeout_s": _number(spec.get("timeout_s", 120.0), (*loc, "timeout_s"), above=0),
    }


BUDGET_KEYS = ("tokens", "cost_usd", "calls", "wall_s", "daily_cost_usd", "daily_tokens", "warn_at")
"""The keys of the ``budget:`` section (``lifeos.policy.budget.BudgetCaps`` reads them)."""
_BUDGET_COUNTS = ("tokens", "calls", "daily_tokens")


def _budget(value: Any, loc: tuple[str, ...] = ("budget",)) -> dict[str, Any]:
    """The ``budget:`` section checked: known keys, counts as integers >= 0, amounts as
    finite numbers >= 0, ``warn_at`` in (0, 1]. A key that is absent or null sets no cap;
    only the keys given are returned."""
    section = _mapping(value, loc)
    _known(section, BUDGET_KEYS, loc)
    out: dict[str, Any] = {}
    for key in BUDGET_KEYS:
        raw = section.get(key)
        if raw is None:
            continue
        where = (*loc, key)
        if key in _BUDGET_COUNTS:
            out[key] = _int(raw, where, 0)
            continue
        number = _number(raw, where)
        if not math.isfinite(number):
            raise _Invalid(where, "should be a finite number")
        if key == "warn_at" and not 0 < number <= 1:
            raise _Invalid(where, "should be greater than 0 and at most 1")
        out[key] = number
    return out


JOB_CAPS = ("tokens", "cost_usd", "calls")
"""The budget caps a request (an OpenClaw job) may set for its run; each lowers
lifeos.yaml's for that run only."""


def job_cap_problem(key: Any, value: Any) -> str | None:
    """Why ``value`` cannot be a request's ``key`` cap, or None when it can: a cap is one
    of :data:`JOB_CAPS`, checked as that key of the ``budget:`` section is (tokens and
    calls whole numbers >= 0, cost a finite number >= 0)."""
    if key not in JOB_CAPS:
        return f"unknown cap {key!r} (caps: {', '.join(JOB_CAPS)})"
    if value is None:
        return f"cap {key!r} should be a number"
    try:
        _budget({key: value}, ())
    except _Invalid as exc:
        return f"cap {key!r} {exc.message}"
    return None


def validate_budget(value: Any) -> dict[str, Any]:
    """Check a ``budget:`` section outside a file (see :func:`load_config` for files).

    Raises:
        ConfigError: ``CONFIG_INVALID``, one line naming the key path
            (``key 'budget.tokens': should be greater than or equal to 0``).
    """
    try:
        return _budget({} if value is None else value)
    except _Invalid as exc:
        raise ConfigError(f"key '{'.'.join(exc.loc)}': {exc.message}") from None


def _validate(data: dict[str, Any]) -> dict[str, Any]:
    """The effective settings: every section checked, defaults filled in."""
    if data.get("version", 1) != 1 or isinstance(data.get("version"), bool):
        raise _Invalid(("version",), "should be 1")
    backlog = _mapping(data.get("backlog") or {}, ("backlog",))
    _known(backlog, ("path", "max_wip"), ("backlog",))
    commands = _mapping(data.get("commands") or {}, ("commands",))
    for name, command in commands.items():
        if not isinstance(command, str) and not (
            isinstance(command, list) and all(isinstance(c, str) for c in command)
        ):
            raise _Invalid(("commands", str(name)), "should be a string or a list of strings")
    policy = data.get("policy")
    if policy is not None:
        _mapping(policy, ("policy",))
    models = _mapping(data.get("models") or {}, ("models",))
    return {
        "backlog": {
            "max_wip": _int(backlog.get("max_wip", 2), ("backlog", "max_wip"), 1),
            "path": _str(backlog.get("path", "config/backlog.yaml"), ("backlog", "path"), False),
        },
        "budget": _budget(data.get("budget") or {}),
        "commands": commands,
        "evidence": _mapping(data.get("evidence") or {}, ("evidence",)),
        "models": {str(role): _model(spec, ("models", str(role))) for role, spec in models.items()},
        "policy": policy,
        "spine": _mapping(data.get("spine") or {}, ("spine",)),
        "store": _str(data.get("store"), ("store",)),
        "version": 1,
    }


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
    from lifeos.yamlio import YamlDocument, load_yaml_file

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
        effective = _validate(data)
    except _Invalid as exc:
        line = doc.line_of(exc.loc)
        where = f"{doc.source}:{line}" if line and exc.loc[0] in raw else doc.source
        message = f"{where}: key '{'.'.join(exc.loc)}': {exc.message}"
        var = "LIFEOS_" + "_".join(exc.loc[:2]).upper()
        if var in overrides:
            message += f" (set by {var})"
        raise ConfigError(message) from None
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
#    provider: openai        # openai | anthropic | replay | command | opencode
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

# Per-run and daily caps on tokens, cost, agent calls and wall time; a run that
# would cross one stops with BUDGET_EXCEEDED (exit 5) and resumes once it is raised.
budget: {}
#  tokens: 200000          # input + output tokens per run
#  cost_usd: 2.00          # per run, priced from the models' pricing
#  calls: 50               # agent calls per run
#  wall_s: 3600            # seconds of running time per run
#  daily_cost_usd: 20.00   # summed over every run of the (UTC) day, from the ledger
#  daily_tokens: 2000000
#  warn_at: 0.8            # warn when a run reaches this fraction of a cap

# LoopSpine: repair attempts, human approvals and the reviewer lenses.
spine: {}
#  repairs: 1              # times a review may send the change back to build
#  reviewers: [technical, testing]
#  approvals: []           # before_build and/or before_steward for every task
#  max_paused_hours: 72    # `lifeos status --write` warns about older paused runs

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
