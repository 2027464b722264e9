"""lifeos.yaml: defaults, validation with file/line/key, secrets, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lifeos.config import (
    CONFIG_FILE,
    SECTIONS,
    find_config,
    load_config,
    starter_config,
    validate_budget,
)
from lifeos.errors import ConfigError, ReasonCode

DEFAULTS = {
    "version": 1,
    "store": None,
    "models": {},
    "policy": None,
    "budget": {},
    "spine": {},
    "backlog": {"path": "config/backlog.yaml", "max_wip": 2},
    "commands": {},
    "evidence": {},
}


def _write(root: Path, text: str | bytes) -> Path:
    path = root / CONFIG_FILE
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _refused(root: Path, text: str | bytes | None, env: dict[str, str] | None = None) -> str:
    if text is not None:
        _write(root, text)
    with pytest.raises(ConfigError) as info:
        load_config(root, env=env or {})
    err = info.value
    assert err.exit_code == 2
    assert err.reason in (ReasonCode.CONFIG_INVALID, ReasonCode.CONFIG_MISSING)
    return err.message


def test_defaults_when_no_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, env={})
    assert cfg.source is None
    assert cfg.overrides == []
    assert cfg.data == DEFAULTS
    assert cfg.policy is None


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    cfg = load_config(tmp_path, env={})
    assert cfg.source == path
    assert cfg.data == DEFAULTS


def test_starter_config_validates(tmp_path: Path) -> None:
    path = _write(tmp_path, starter_config())
    cfg = load_config(tmp_path, env={})
    assert cfg.source == path
    assert cfg.data["version"] == 1
    assert cfg.policy == {"profile": "code"}
    assert cfg.data["backlog"] == {"path": "config/backlog.yaml", "max_wip": 2}
    raw = yaml.safe_load(starter_config())
    assert set(raw) <= set(SECTIONS)


def test_full_config(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "version: 1\n"
        "store: .lifeos/other.db\n"
        "models:\n  builder:\n    provider: openai\n    api_key_env: OPENAI_API_KEY\n"
        "budget: {tokens: 1000}\n"
        "backlog:\n  path: tasks.yaml\n  max_wip: 3\n"
        "commands:\n  test: [python, -m, pytest]\n  lint: ruff check\n",
    )
    cfg = load_config(tmp_path, env={})
    assert cfg.data["store"] == ".lifeos/other.db"
    builder = cfg.data["models"]["builder"]
    assert builder["provider"] == "openai" and builder["api_key_env"] == "OPENAI_API_KEY"
    assert builder["model"] is None and builder["timeout_s"] == 120.0
    assert cfg.data["backlog"] == {"path": "tasks.yaml", "max_wip": 3}
    assert cfg.data["commands"] == {"test": ["python", "-m", "pytest"], "lint": "ruff check"}
    assert cfg.data["budget"] == {"tokens": 1000}


def test_unknown_top_level_key_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "version: 1\nbacklog:\n  max_wip: 2\nfrobnicate: true\n")
    assert msg.startswith(f"{path}:4: unknown top-level key 'frobnicate'")
    assert "allowed: version, store" in msg


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, 'version: 1\nbacklog:\n  path: x.yaml\n  max_wip: "two"\n')
    assert msg.startswith(f"{path}:4: key 'backlog.max_wip': ")
    assert "integer" in msg


def test_max_wip_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "backlog:\n  max_wip: 0\n")
    assert msg.startswith(f"{path}:2: key 'backlog.max_wip': ")


def test_unknown_key_inside_backlog(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "backlog:\n  path: x.yaml\n  colour: red\n")
    assert msg == f"{path}:3: key 'backlog.colour': unknown key"


def test_wrong_version(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "version: 2\n")
    assert msg.startswith(f"{path}:1: key 'version': ")


def test_yaml_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "version: 1\nbacklog:\n  path: [unclosed\n  max_wip: 2\n")
    assert msg.startswith(f"{path}:")
    assert "invalid YAML" in msg
    line = int(msg[len(str(path)) + 1 :].split(":", 1)[0])
    assert 3 <= line <= 5


def test_bad_indentation_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "version: 1\nbacklog:\n  path: x\n max_wip: 2\n")
    assert msg.startswith(f"{path}:4: invalid YAML")


@pytest.mark.parametrize("text", ["- version\n- store\n", "just a string\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, text)
    assert msg == f"{path}: the top level must be a mapping of sections"


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, "version: 1\nstore: a.db\nstore: b.db\n")
    assert msg == f"{path}:3: duplicate key 'store'"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("models:\n  builder:\n    api_key: sk-abc123\n", "models.builder.api_key"),
        ("models:\n  reviewer:\n    token: abc\n", "models.reviewer.token"),
        ("spine:\n  password: hunter2\n", "spine.password"),
        ("evidence:\n  sinks:\n    - {secret: s3cr3t}\n", "evidence.sinks[0].secret"),
    ],
)
def test_secrets_are_refused(tmp_path: Path, text: str, where: str) -> None:
    msg = _refused(tmp_path, text)
    assert f"key '{where}' holds a secret" in msg
    assert "_env' instead" in msg
    assert "sk-abc123" not in msg


def test_secret_named_by_env_var_is_fine(tmp_path: Path) -> None:
    _write(tmp_path, "models:\n  builder:\n    provider: openai\n    api_key_env: OPENAI_API_KEY\n")
    cfg = load_config(tmp_path, env={"OPENAI_API_KEY": "sk-real"})
    assert cfg.data["models"]["builder"]["api_key_env"] == "OPENAI_API_KEY"
    assert "sk-real" not in str(cfg.data)
    assert cfg.overrides == []


def test_store_url_with_credentials_refused(tmp_path: Path) -> None:
    msg = _refused(tmp_path, "store: postgresql://user:pw@db.example/lifeos\n")
    assert "key 'store' carries credentials" in msg
    assert "LIFEOS_STORE_URL" in msg
    assert "pw@" not in msg


def test_store_url_without_credentials_is_fine(tmp_path: Path) -> None:
    _write(tmp_path, "store: postgresql://db.example/lifeos\n")
    assert load_config(tmp_path, env={}).data["store"] == "postgresql://db.example/lifeos"


def test_store_url_with_credentials_via_env(tmp_path: Path) -> None:
    url = "postgresql://user:pw@db.example/lifeos"
    cfg = load_config(tmp_path, env={"LIFEOS_STORE_URL": url})
    assert cfg.data["store"] == url
    assert cfg.overrides == ["LIFEOS_STORE_URL"]


def test_store_with_credentials_via_lifeos_store_is_refused(tmp_path: Path) -> None:
    msg = _refused(tmp_path, None, env={"LIFEOS_STORE": "postgresql://u:p@h/db"})
    assert "LIFEOS_STORE_URL" in msg


def test_credentials_in_file_refused_even_with_env_override(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        "store: postgresql://user:pw@db.example/lifeos\n",
        env={"LIFEOS_STORE_URL": "postgresql://db.example/lifeos"},
    )
    assert "credentials" in msg


def test_env_overrides_applied_and_listed(tmp_path: Path) -> None:
    _write(tmp_path, "backlog:\n  path: tasks.yaml\n  max_wip: 2\nstore: local.db\n")
    env = {
        "LIFEOS_BACKLOG_MAX_WIP": "5",
        "LIFEOS_STORE_URL": "postgresql://db.example/lifeos",
        "HOME": "/somewhere",
        "LIFEOS_NOTASECTION_X": "1",
        "LIFEOS_VERSION_X": "1",
    }
    cfg = load_config(tmp_path, env=env)
    assert cfg.data["backlog"] == {"path": "tasks.yaml", "max_wip": 5}
    assert cfg.data["store"] == "postgresql://db.example/lifeos"
    assert cfg.overrides == ["LIFEOS_BACKLOG_MAX_WIP", "LIFEOS_STORE_URL"]


def test_env_override_without_a_file(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, env={"LIFEOS_BACKLOG_MAX_WIP": "4", "LIFEOS_BUDGET_TOKENS": "9"})
    assert cfg.source is None
    assert cfg.data["backlog"]["max_wip"] == 4
    assert cfg.data["backlog"]["path"] == "config/backlog.yaml"
    assert cfg.data["budget"] == {"tokens": 9}
    assert cfg.overrides == ["LIFEOS_BACKLOG_MAX_WIP", "LIFEOS_BUDGET_TOKENS"]


def test_env_override_is_still_validated(tmp_path: Path) -> None:
    msg = _refused(tmp_path, None, env={"LIFEOS_BACKLOG_MAX_WIP": "zero"})
    assert "integer" in msg


def test_invalid_env_override_names_the_key(tmp_path: Path) -> None:
    msg = _refused(tmp_path, None, env={"LIFEOS_BACKLOG_MAX_WIP": "zero"})
    assert "max_wip" in msg or "MAX_WIP" in msg


def test_env_override_into_a_non_mapping_section(tmp_path: Path) -> None:
    msg = _refused(tmp_path, "budget: 3\n", env={"LIFEOS_BUDGET_TOKENS": "9"})
    assert "LIFEOS_BUDGET_TOKENS" in msg
    assert "budget" in msg


def test_the_file_is_not_changed_by_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "backlog:\n  max_wip: 2\n")
    load_config(tmp_path, env={"LIFEOS_BACKLOG_MAX_WIP": "5"})
    assert path.read_text() == "backlog:\n  max_wip: 2\n"
    assert load_config(tmp_path, env={}).data["backlog"]["max_wip"] == 2


def test_explicit_config_path(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.yaml"
    other.write_text("backlog:\n  max_wip: 7\n")
    _write(tmp_path, "backlog:\n  max_wip: 1\n")
    cfg = load_config(tmp_path, other, env={})
    assert cfg.source == other
    assert cfg.data["backlog"]["max_wip"] == 7


def test_explicit_config_path_missing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, missing, env={})
    assert info.value.reason is ReasonCode.CONFIG_MISSING
    assert info.value.exit_code == 2
    assert str(missing) in info.value.message


def test_explicit_config_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path, tmp_path)
    assert info.value.reason is ReasonCode.CONFIG_MISSING


def test_find_config(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None
    path = _write(tmp_path, "version: 1\n")
    assert find_config(tmp_path) == path


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, b"version: 1\nstore: \xff\xfe\n")
    assert msg.startswith(f"{path}: cannot read")


# -- budget: ------------------------------------------------------------------------


def test_budget_keys_are_checked_and_normalised(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "budget:\n  tokens: 1000\n  cost_usd: 2\n  calls: 0\n  wall_s: 90.5\n"
        "  daily_cost_usd: 20\n  daily_tokens: 50000\n  warn_at: 1\n",
    )
    cfg = load_config(tmp_path, env={})
    assert cfg.data["budget"] == {
        "tokens": 1000,
        "cost_usd": 2.0,
        "calls": 0,
        "wall_s": 90.5,
        "daily_cost_usd": 20.0,
        "daily_tokens": 50000,
        "warn_at": 1.0,
    }


def test_budget_null_values_set_no_cap(tmp_path: Path) -> None:
    _write(tmp_path, "budget:\n  tokens: null\n  cost_usd: 1.5\n")
    assert load_config(tmp_path, env={}).data["budget"] == {"cost_usd": 1.5}


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        ("budget:\n  tokens: -1\n", 2, "budget.tokens", "greater than or equal to 0"),
        ("budget:\n  tokens: 1.5\n", 2, "budget.tokens", "valid integer"),
        ("budget:\n  calls: true\n", 2, "budget.calls", "valid integer"),
        ("budget:\n  daily_tokens: lots\n", 2, "budget.daily_tokens", "valid integer"),
        ("budget:\n  cost_usd: -0.5\n", 2, "budget.cost_usd", "greater than or equal to 0"),
        ("budget:\n  cost_usd: two\n", 2, "budget.cost_usd", "valid number"),
        ("budget:\n  warn_at: 0\n", 2, "budget.warn_at", "greater than 0 and at most 1"),
        ("budget:\n  warn_at: 1.5\n", 2, "budget.warn_at", "greater than 0 and at most 1"),
        ("budget:\n  tokens: 5\n  run_tokens: 5\n", 3, "budget.run_tokens", "unknown key"),
        ("budget: [1, 2]\n", 1, "budget", "should be a mapping"),
    ],
)
def test_bad_budget_values_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, problem: str
) -> None:
    path = tmp_path / CONFIG_FILE
    msg = _refused(tmp_path, text)
    assert msg.startswith(f"{path}:{line}: key '{key}': ")
    assert problem in msg
    assert "\n" not in msg


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_validate_budget_refuses_non_finite_amounts(value: float) -> None:
    # The YAML loader already refuses .nan and .inf; a mapping built in code is checked too.
    with pytest.raises(ConfigError) as info:
        validate_budget({"wall_s": value})
    assert info.value.reason is ReasonCode.CONFIG_INVALID
    assert info.value.message == "key 'budget.wall_s': should be a finite number"


def test_validate_budget_outside_a_file() -> None:
    assert validate_budget(None) == {}
    assert validate_budget({"calls": 3, "warn_at": 0.5}) == {"calls": 3, "warn_at": 0.5}
    with pytest.raises(ConfigError) as info:
        validate_budget({"tokens": -1})
    assert info.value.one_line() == (
        "key 'budget.tokens': should be greater than or equal to 0 [CONFIG_INVALID]"
    )


def test_bad_budget_override_names_the_variable(tmp_path: Path) -> None:
    msg = _refused(tmp_path, None, env={"LIFEOS_BUDGET_COST_USD": "-2"})
    assert "key 'budget.cost_usd': should be greater than or equal to 0" in msg
    assert msg.endswith("(set by LIFEOS_BUDGET_COST_USD)")


def test_budget_override_is_typed(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, env={"LIFEOS_BUDGET_DAILY_COST_USD": "12.5"})
    assert cfg.data["budget"] == {"daily_cost_usd": 12.5}
    assert cfg.overrides == ["LIFEOS_BUDGET_DAILY_COST_USD"]


def test_starter_config_budget_example_validates(tmp_path: Path) -> None:
    lines = starter_config().splitlines()
    start = lines.index("budget: {}")
    example = ["budget:"]
    for text in lines[start + 1 :]:
        if not text.startswith("#  "):
            break
        example.append("  " + text[3:].split("#", 1)[0].rstrip())
    _write(tmp_path, "\n".join(example) + "\n")
    budget = load_config(tmp_path, env={}).data["budget"]
    assert set(budget) == {
        "tokens", "cost_usd", "calls", "wall_s", "daily_cost_usd", "daily_tokens", "warn_at"
    }  # fmt: skip


# -- the OpenCode builder's keys: binary, opencode_config -------------------------------


def test_opencode_builder_keys(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "models:\n"
        "  builder:\n"
        "    provider: opencode\n"
        "    model: openrouter/anthropic/claude-sonnet-4.5\n"
        "    binary: /opt/opencode/bin/opencode\n"
        "    api_key_env: OPENROUTER_API_KEY\n"
        "    opencode_config:\n"
        "      provider:\n"
        "        openrouter:\n"
        "          options: {baseURL: 'https://openrouter.ai/api/v1'}\n"
        "          models:\n"
        "            anthropic/claude-sonnet-4.5: {cost: {input: 3, output: 15}}\n"
        "      share: disabled\n"
        "      autoupdate: false\n",
    )
    builder = load_config(tmp_path, env={}).data["models"]["builder"]
    assert builder["provider"] == "opencode"
    assert builder["binary"] == "/opt/opencode/bin/opencode"
    assert builder["model"] == "openrouter/anthropic/claude-sonnet-4.5"
    assert builder["opencode_config"] == {
        "provider": {
            "openrouter": {
                "options": {"baseURL": "https://openrouter.ai/api/v1"},
                "models": {"anthropic/claude-sonnet-4.5": {"cost": {"input": 3, "output": 15}}},
            }
        },
        "share": "disabled",
        "autoupdate": False,
    }


def test_opencode_keys_default(tmp_path: Path) -> None:
    _write(tmp_path, "models:\n  builder: {provider: opencode, model: p/m}\n")
    builder = load_config(tmp_path, env={}).data["models"]["builder"]
    assert builder["binary"] == "opencode"
    assert builder["opencode_config"] is None
    _write(tmp_path, "models:\n  builder: {provider: openai}\n")
    assert load_config(tmp_path, env={}).data["models"]["builder"]["binary"] == "opencode"


@pytest.mark.parametrize(
    ("spec", "key", "problem"),
    [
        ("{provider: opencode, model: scripted}", "model", "providerID/modelID"),
        ("{provider: opencode, model: /scripted}", "model", "providerID/modelID"),
        ("{provider: opencode, model: 'p/'}", "model", "providerID/modelID"),
        ("{provider: opencode, binary: ''}", "binary", "should not be empty"),
        ("{provider: opencode, binary: [opencode]}", "binary", "valid string"),
        ("{provider: opencode, binary: null}", "binary", "valid string"),
        ("{provider: opencode, opencode_config: [a]}", "opencode_config", "mapping"),
        ("{provider: opencode, opencode_config: x}", "opencode_config", "mapping"),
        (
            "{provider: opencode, opencode_config: {a: {1: b}}}",
            "opencode_config.a.1",
            "string keys",
        ),
    ],
)
def test_opencode_keys_are_checked(tmp_path: Path, spec: str, key: str, problem: str) -> None:
    msg = _refused(tmp_path, f"models:\n  builder: {spec}\n")
    assert f"key 'models.builder.{key}'" in msg
    assert problem in msg
    assert msg.startswith(f"{tmp_path / CONFIG_FILE}:2:")


def test_opencode_config_cannot_hold_a_key(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        "models:\n  builder:\n    provider: opencode\n    opencode_config:\n"
        "      provider: {p: {options: {apiKey: sk-live}}}\n",
    )
    assert "models.builder.opencode_config.provider.p.options.apiKey' holds a secret" in msg
    assert "sk-live" not in msg


@pytest.mark.parametrize(
    ("value", "key", "problem"),
    [
        ("{when: 2026-01-01}", "opencode_config.when", "should be JSON"),
        ("{a: [.nan]}", "opencode_config.a.0", "finite"),
    ],
)
def test_opencode_config_from_the_environment_is_checked(
    tmp_path: Path, value: str, key: str, problem: str
) -> None:
    # the file refuses dates and NaN itself; an override is YAML too, read by safe_load
    env = {"LIFEOS_MODELS_BUILDER": f"{{provider: opencode, opencode_config: {value}}}"}
    msg = _refused(tmp_path, None, env)
    assert f"key 'models.builder.{key}'" in msg and problem in msg
    assert "(set by LIFEOS_MODELS_BUILDER)" in msg
