"""``keys-init|rotate|export`` on the head-end's clock, with ``--valid-from`` (simulated fleets)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from headend.commands.signing import Ed25519Signer
from headend.security import cli
from headend.security.errors import KeyStoreError
from headend.security.keys import KeyStore
from protocols.uplink import Command

START = datetime(2020, 1, 1, tzinfo=UTC)  # a simulated clock years behind the wall clock


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "headend.toml"
    anchor = datetime.now(UTC).replace(microsecond=0).isoformat()
    path.write_text(
        f"clock = {{ start = {START.isoformat()}, factor = 1, anchor = {anchor} }}\n\n"
        f'[security]\nkeys_dir = "{tmp_path / "keys"}"\n'
    )
    return path


def keys(config: Path) -> KeyStore:
    return KeyStore(config.parent / "keys")


def test_keys_are_dated_on_the_head_end_clock(config: Path) -> None:
    code, out = invoke("keys-init", "--config", str(config))
    assert code == 0, out
    (key,) = keys(config).entries()
    assert START <= key.not_before < START + timedelta(minutes=5)  # not the wall clock
    assert key.created == key.not_before


def test_valid_from_in_the_past_signs_from_the_simulated_start(config: Path) -> None:
    begin = START - timedelta(days=1)
    code, out = invoke("keys-init", "--config", str(config), "--valid-from", begin.isoformat())
    assert code == 0, out
    store = keys(config)
    assert store.current(begin).not_before == begin
    with pytest.raises(KeyStoreError, match="no signing key"):
        store.current(begin - timedelta(seconds=1))
    # the dispatcher's signer signs a command issued at the simulated start, and it verifies
    command = Command(
        id="c-1",
        gw="gw-0001",
        action="read",
        issued=begin,
        valid_until=begin + timedelta(hours=1),
        nonce="n" * 16,
    )
    signature = Ed25519Signer(store).sign(command)
    public = Ed25519PublicKey.from_public_bytes(store.current(begin).public_key)
    public.verify(base64.b64decode(signature.value), command.signing_bytes())


@pytest.mark.parametrize(
    "bad", ["2020-01-01T00:00:00", "yesterday", "2020-13-01T00:00:00Z"], ids=str
)
def test_valid_from_needs_an_iso_time_with_offset(config: Path, bad: str) -> None:
    code, out = invoke("keys-init", "--config", str(config), "--valid-from", bad)
    assert code == 2 and "--valid-from" in out
    assert keys(config).entries() == []


def test_rotation_honours_valid_from_and_the_old_keys_start(config: Path) -> None:
    first = START + timedelta(days=10)
    assert invoke("keys-init", "--config", str(config), "--valid-from", first.isoformat())[0] == 0
    # a new key activating before the first one even starts would leave a window with no key
    code, out = invoke(
        "keys-rotate",
        "--config",
        str(config),
        "--valid-from",
        (first - timedelta(days=1)).isoformat(),
    )
    assert code == 2 and "signs only from" in out
    assert len(keys(config).entries()) == 1
    activate = START + timedelta(days=20)
    code, out = invoke(
        "keys-rotate",
        "--config",
        str(config),
        "--valid-from",
        activate.isoformat(),
        "--overlap-days",
        "3",
    )
    assert code == 0, out
    old, new = keys(config).entries()
    assert new.not_before == activate
    assert old.not_after == activate + timedelta(days=3)
    assert keys(config).current(activate - timedelta(seconds=1)).key_id == old.key_id
    assert keys(config).current(activate).key_id == new.key_id


def test_export_lists_the_keys_valid_on_the_head_end_clock(config: Path, tmp_path: Path) -> None:
    assert invoke("keys-init", "--config", str(config), "--valid-from", START.isoformat())[0] == 0
    activate = START + timedelta(days=30)
    code, _ = invoke(
        "keys-rotate",
        "--config",
        str(config),
        "--valid-from",
        activate.isoformat(),
        "--overlap-days",
        "0",
    )
    assert code == 0
    trust = tmp_path / "trust.json"
    assert invoke("keys-export", str(trust), "--config", str(config))[0] == 0
    listed = [k["key_id"] for k in json.loads(trust.read_text())["keys"]]
    # on the simulated clock (January 2020) the first key is not past its cut-over yet; on the
    # wall clock it would be, and gateways of the simulated fleet could not check its signatures
    assert listed == [k.key_id for k in keys(config).entries()]
