"""Every configuration error is found at start: exit 2 naming the key (issue 19: an invalid
``holiday_country`` was found only at the first log-in)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from headend import cli
from headend.app import create_app
from headend.config import ConfigError, DatabaseSettings, Settings, load_settings


def serve(tmp_path: Path, body: str):
    config = tmp_path / "headend.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "h.db"}"\n\n{body}')
    return CliRunner().invoke(cli.app, ["serve", "--config", str(config), "--no-ingest"])


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('[guards]\nholiday_country = "XX"\n', "guards.holiday_country"),
        ("[guards]\nsupervisor_window_minutes = -1\n", "guards.supervisor_window_minutes"),
        ("[commands]\nmax_meters = 0\n", "commands.max_meters"),
        ('[analytics]\nzone = "Mars/Olympus"\n', "analytics.zone"),
        ("[scale]\npartitions_ahead = 0\n", "scale.partitions_ahead"),
        ("[prepay]\nno_such_key = 1\n", "prepay.no_such_key"),
        ("[security]\nbroker_port = 0\n", "security.broker_port"),
        ("[auth.throttle]\nfree_failures = 9\nlockout_failures = 3\n", "auth.throttle"),
        ("[api]\nmax_body_bytes = 10\n", "api.max_body_bytes"),
        ("[esam]\nsession_seconds = 5\n", "esam.session_seconds"),
        ('[gaurds]\nholiday_country = "CN"\n', "unknown sections ['gaurds']"),
        ('clock = { start = "yesterday" }\n', "clock"),
    ],
)
def test_serve_exits_2_naming_the_key(tmp_path, body, key):
    result = serve(tmp_path, body)
    assert result.exit_code == 2, result.output
    assert key in result.output and "headend.toml" in result.output


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    config = tmp_path / "headend.toml"
    config.write_text('[guards]\nholiday_country = "XX"\n\n[analytics]\nzone = "Nowhere/Zone"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "guards.holiday_country" in str(caught.value) and "analytics.zone" in str(caught.value)


def test_create_app_checks_settings_built_in_code(tmp_path):
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"),
        extra={"guards": {"holiday_country": "XX"}},
    )
    with pytest.raises(ConfigError, match=r"guards\.holiday_country"):
        create_app(settings, ingest=False)


def test_a_good_file_still_loads(tmp_path):
    config = tmp_path / "headend.toml"
    config.write_text(
        '[guards]\nholiday_country = "CN"\nsupervisor_window_minutes = 30\n\n'
        "[auth.throttle]\nfree_failures = 3\nlockout_failures = 6\n"
    )
    settings = load_settings(config)
    assert settings.auth.throttle.lockout_failures == 6


def test_an_esam_section_loads(tmp_path):
    """``[esam]`` is a known section (it was refused as unknown before the ESAM flow ran end
    to end: a head-end with an encryption service could not start)."""
    config = tmp_path / "headend.toml"
    config.write_text('[esam]\nservice = "software"\nkey_file = "k.key"\nproduction = false\n')
    settings = load_settings(config)
    assert settings.extra["esam"]["production"] is False
