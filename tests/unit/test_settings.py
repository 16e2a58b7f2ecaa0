"""Typed settings from defaults, an optional TOML file and SMSGW_* variables."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from smsgw.settings import REPO_ROOT, Settings


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "smsgw.toml"
    path.write_text(text)
    return {"SMSGW_CONFIG": str(path)}


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.data_dir == Path(".smsgw-data")
    assert settings.migrations_dir == REPO_ROOT / "migrations"
    assert settings.migrate_on_start is True
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.http_address == "127.0.0.1:9464"
    assert settings.db_pool_size == 12
    assert settings.submit_batch_max == 1000
    assert settings.max_segments == 10
    assert settings.default_region is None
    assert settings.idempotency_ttl_hours == 48
    assert settings.relay_enabled is True
    assert settings.relay_poll_seconds == 1.0
    assert settings.retry_max_attempts == 5
    assert settings.retry_cap_seconds == 1800.0
    assert settings.simulator_failure_rate == 0.0
    assert settings.log_level == "INFO"
    assert settings.log_json is True


def test_migrations_dir_default_is_the_repository_migrations() -> None:
    assert (Settings().migrations_dir / "0001_initial.sql").is_file()


def test_empty_environment_gives_the_defaults() -> None:
    assert Settings.load({}) == Settings()


def test_unrelated_variables_are_ignored() -> None:
    env = {"PATH": "/bin", "DB_POOL_SIZE": "3", "smsgw_db_pool_size": "3", "SMSGW_NOPE": "1"}
    assert Settings.load(env) == Settings()


def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSGW_DB_POOL_SIZE", "21")
    monkeypatch.delenv("SMSGW_CONFIG", raising=False)
    assert Settings.load().db_pool_size == 21


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("db_pool_size", "20", 20),
        ("db_pool_size", " 20 ", 20),
        ("relay_batch_size", "1", 1),
        ("relay_poll_seconds", "0.25", 0.25),
        ("relay_poll_seconds", "3", 3.0),
        ("retry_cap_seconds", "1e3", 1000.0),
        ("data_dir", "/var/lib/smsgw", Path("/var/lib/smsgw")),
        ("migrations_dir", "db/migrations", Path("db/migrations")),
        ("database_url", "postgresql://u@h/db", "postgresql://u@h/db"),
        ("redis_url", "redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("default_region", "GB", "GB"),
        ("log_level", "DEBUG", "DEBUG"),
    ],
)
def test_env_overrides_are_coerced(name: str, raw: str, expected: object) -> None:
    value = getattr(Settings.load({f"SMSGW_{name.upper()}": raw}), name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "on", " on "])
def test_true_booleans(raw: str) -> None:
    assert Settings.load({"SMSGW_RELAY_ENABLED": raw}).relay_enabled is True


@pytest.mark.parametrize("raw", ["0", "false", "FALSE", "no", "off", " Off "])
def test_false_booleans(raw: str) -> None:
    settings = Settings.load({"SMSGW_RELAY_ENABLED": raw, "SMSGW_LOG_JSON": raw})
    assert (settings.relay_enabled, settings.log_json) == (False, False)


@pytest.mark.parametrize("name", ["database_url", "redis_url", "default_region"])
@pytest.mark.parametrize("raw", ["", "   "])
def test_blank_optional_strings_mean_none(name: str, raw: str) -> None:
    assert getattr(Settings.load({f"SMSGW_{name.upper()}": raw}), name) is None


def test_blank_required_string_stays_a_string() -> None:
    assert Settings.load({"SMSGW_LOG_LEVEL": ""}).log_level == ""


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("db_pool_size", "twelve", "setting db_pool_size: 'twelve' is not a int"),
        ("db_pool_size", "1.5", "setting db_pool_size: '1.5' is not a int"),
        ("db_pool_size", "", "setting db_pool_size: '' is not a int"),
        ("relay_poll_seconds", "fast", "setting relay_poll_seconds: 'fast' is not a float"),
        ("relay_enabled", "maybe", "setting relay_enabled: 'maybe' is not a boolean"),
        ("relay_enabled", "", "setting relay_enabled: '' is not a boolean"),
        ("simulator_failure_rate", "1.5", "simulator_failure_rate must be between 0 and 1"),
        ("simulator_failure_rate", "-0.1", "simulator_failure_rate must be between 0 and 1"),
        ("simulator_failure_rate", "nan", "simulator_failure_rate must be between 0 and 1"),
        ("submit_batch_max", "0", "batch sizes must be positive"),
        ("relay_batch_size", "-1", "batch sizes must be positive"),
        ("max_segments", "0", "max_segments must be at least 1"),
    ],
)
def test_bad_env_values_raise_a_clear_error(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.load({f"SMSGW_{name.upper()}": raw})


def test_boundary_values_are_accepted() -> None:
    env = {"SMSGW_SIMULATOR_FAILURE_RATE": "1", "SMSGW_MAX_SEGMENTS": "1",
           "SMSGW_SUBMIT_BATCH_MAX": "1", "SMSGW_RELAY_BATCH_SIZE": "1"}
    settings = Settings.load(env)
    assert (settings.simulator_failure_rate, settings.max_segments) == (1.0, 1)


def test_toml_file(tmp_path: Path) -> None:
    env = _config(tmp_path, """
        db_pool_size = 7
        relay_enabled = false
        relay_poll_seconds = 2
        data_dir = "/srv/smsgw"
        database_url = "postgresql://file/db"
        default_region = "AF"
        log_level = "WARNING"
    """)
    settings = Settings.load(env)
    assert settings == Settings(
        db_pool_size=7, relay_enabled=False, relay_poll_seconds=2.0,
        data_dir=Path("/srv/smsgw"), database_url="postgresql://file/db",
        default_region="AF", log_level="WARNING",
    )
    assert type(settings.relay_poll_seconds) is float
    assert isinstance(settings.data_dir, Path)


def test_env_beats_the_file_and_overrides_beat_both(tmp_path: Path) -> None:
    env = _config(tmp_path, 'db_pool_size = 7\nlog_level = "WARNING"\nmax_segments = 3\n')
    env |= {"SMSGW_DB_POOL_SIZE": "9", "SMSGW_MAX_SEGMENTS": "4"}
    settings = Settings.load(env, max_segments=5)
    assert (settings.db_pool_size, settings.log_level, settings.max_segments) == (9, "WARNING", 5)


def test_file_strings_are_coerced_like_env(tmp_path: Path) -> None:
    env = _config(tmp_path, 'db_pool_size = "8"\nrelay_enabled = "off"\ndatabase_url = ""\n')
    settings = Settings.load(env)
    assert (settings.db_pool_size, settings.relay_enabled, settings.database_url) == (
        8, False, None)


def test_empty_config_variable_means_no_file() -> None:
    assert Settings.load({"SMSGW_CONFIG": ""}) == Settings()


def test_unknown_keys_in_the_file_are_rejected(tmp_path: Path) -> None:
    env = _config(tmp_path, "db_pool_size = 7\npool_sise = 3\nalpha = 1\n")
    with pytest.raises(ValueError, match=r"^unknown settings: alpha, pool_sise$"):
        Settings.load(env)


def test_tables_in_the_file_are_rejected(tmp_path: Path) -> None:
    env = _config(tmp_path, "[relay]\nbatch_size = 10\n")
    with pytest.raises(ValueError, match=r"^unknown settings: relay$"):
        Settings.load(env)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("db_pool_size = true", "setting db_pool_size: 'True' is not a int"),
        ("db_pool_size = 1.5", "setting db_pool_size: '1.5' is not a int"),
        ('db_pool_size = "many"', "setting db_pool_size: 'many' is not a int"),
        ('relay_enabled = "sometimes"', "setting relay_enabled: 'sometimes' is not a boolean"),
        ("relay_enabled = 2", "setting relay_enabled: '2' is not a boolean"),
        ("simulator_failure_rate = 2.0", "simulator_failure_rate must be between 0 and 1"),
    ],
)
def test_bad_file_values_raise_a_clear_error(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.load(_config(tmp_path, line + "\n"))


def test_malformed_toml_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        Settings.load(_config(tmp_path, "db_pool_size = = 7\n"))
    assert issubclass(tomllib.TOMLDecodeError, ValueError)


def test_missing_config_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        Settings.load({"SMSGW_CONFIG": str(missing)})


def test_from_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"^unknown settings: bogus$"):
        Settings.from_mapping({"bogus": 1})


def test_from_mapping_accepts_typed_values_unchanged() -> None:
    settings = Settings.from_mapping(
        {"db_pool_size": 3, "relay_enabled": False, "data_dir": Path("/d"),
         "relay_poll_seconds": 0.5, "database_url": None})
    assert (settings.db_pool_size, settings.relay_enabled, settings.data_dir,
            settings.relay_poll_seconds, settings.database_url) == (
        3, False, Path("/d"), 0.5, None)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.db_pool_size = 1  # type: ignore[misc]


def test_replace_returns_a_changed_copy() -> None:
    settings = Settings()
    changed = settings.replace(db_pool_size=2, relay_enabled=False)
    assert (changed.db_pool_size, changed.relay_enabled) == (2, False)
    assert (settings.db_pool_size, settings.relay_enabled) == (12, True)
