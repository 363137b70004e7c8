"""``taiqu headend create-user`` and ``verify-audit`` (the operations sub-commands)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from headend.auth import users
from headend.config import DatabaseSettings
from headend.db import make_engine, reading, writing
from headend.ops_cli import app
from tests.headend.ops_support import PASSWORD, cheap_hashes_fixture, seed_archive  # noqa: F401

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, cheap_hashes: None) -> Path:
    db = tmp_path / "headend.db"
    path = tmp_path / "headend.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    return path


def engine_of(config: Path):
    url = config.read_text().split('"')[1]
    return make_engine(DatabaseSettings(url=url))


def test_create_user_with_role_and_areas(config):
    r = runner.invoke(
        app,
        ["create-user", "ada", "--role", "admin", "--password-stdin", "-c", str(config)],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    assert "created ada (admin, every area)" in r.output
    engine = engine_of(config)
    seed_archive(engine)
    r = runner.invoke(
        app,
        [
            "create-user",
            "ola",
            "--role",
            "operator",
            "--areas",
            "A2,B1",
            "--password-stdin",
            "-c",
            str(config),
        ],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    with reading(engine) as conn:
        ola = users.get(conn, "ola")
    assert ola.areas == frozenset({"A2", "B1"}) and ola.role == "operator"
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--role", "root"], "unknown role"),
        (["--role", "viewer", "--areas", "ZZ"], "unknown areas"),
    ],
)
def test_create_user_refuses_bad_input_with_exit_2(config, args, text):
    r = runner.invoke(
        app,
        ["create-user", "bob", *args, "--password-stdin", "-c", str(config)],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 2 and text in r.output


def test_create_user_refuses_a_short_password_and_prompts_twice(config):
    r = runner.invoke(
        app, ["create-user", "bob", "--role", "viewer", "-c", str(config)], input="short\nshort\n"
    )
    assert r.exit_code == 2 and "at least" in r.output
    r = runner.invoke(
        app,
        ["create-user", "bob", "--role", "viewer", "-c", str(config)],
        input=f"{PASSWORD}\nsomething else\n",
    )
    assert r.exit_code == 2 and "differ" in r.output


def test_verify_audit_reports_ok_then_the_first_broken_row(config):
    runner.invoke(
        app,
        ["create-user", "ada", "--role", "admin", "--password-stdin", "-c", str(config)],
        input=PASSWORD + "\n",
    )
    runner.invoke(
        app,
        ["create-user", "vic", "--role", "viewer", "--password-stdin", "-c", str(config)],
        input=PASSWORD + "\n",
    )
    r = runner.invoke(app, ["verify-audit", "-c", str(config)])
    assert r.exit_code == 0 and "audit chain ok: 2 rows" in r.output
    engine = engine_of(config)
    with writing(engine) as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET subject = 'mallory' WHERE id = 1")
    engine.dispose()
    r = runner.invoke(app, ["verify-audit", "-c", str(config)])
    assert r.exit_code == 1 and "BROKEN at row 1" in r.output


def test_a_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\nurl = 'mysql://x'\n")
    r = runner.invoke(app, ["verify-audit", "-c", str(bad)])
    assert r.exit_code == 2 and "database.url" in r.output
