"""``taiqu headend enrol-gateway | rekey-gateway | gateway-keys | revoke-gateway | keys-* | …``.

- ``gateways``: a gateway's broker credentials, bundle and uplink signing keys;
- ``broker``: the head-end's broker identities and the broker's TLS certificate (local CA);
- ``signing``: the command-signing keys and the gateways' trust file;
- ``options``: the shared options, ``[security]`` and error exit.

The laboratory ESAM key command is ``headend.esam.cli``.  ``register(app)`` mounts them all on
the ``taiqu headend`` app.
"""

from __future__ import annotations

import typer

from headend.esam.cli import esam_lab_key
from headend.security.cli.broker import enrol_headend, init_ca
from headend.security.cli.gateways import enrol_gateway, gateway_keys, rekey_gateway, revoke_gateway
from headend.security.cli.signing import keys_export, keys_init, keys_rotate


def register(target: typer.Typer) -> None:
    """Add the security sub-commands to ``target`` (the ``taiqu headend`` app)."""
    target.command("enrol-gateway")(enrol_gateway)
    target.command("enrol-headend")(enrol_headend)
    target.command("revoke-gateway")(revoke_gateway)
    target.command("gateway-keys")(gateway_keys)
    target.command("rekey-gateway")(rekey_gateway)
    target.command("keys-init")(keys_init)
    target.command("keys-rotate")(keys_rotate)
    target.command("keys-export")(keys_export)
    target.command("init-ca")(init_ca)
    target.command("esam-lab-key")(esam_lab_key)


app = typer.Typer(
    help="Head-end security: signing keys and broker enrolment.", no_args_is_help=True
)
register(app)
