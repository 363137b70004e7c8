"""The dispatcher as ``taiqu headend serve`` runs it: outbox publisher, signer, settings, clock."""

from __future__ import annotations

from sqlalchemy import Engine

from headend.commands.dispatcher import Dispatcher
from headend.commands.publisher import OutboxPublisher
from headend.commands.settings import FlowSettings, ops_settings
from headend.commands.signing import Signer
from headend.config import Settings
from headend.esam import EncryptionService
from headend.esam.settings import EsamSettings
from taiqu.clock import Clock


def make_signer(settings: Settings) -> Signer:
    """The signer ``[security]`` asks for (``KeyStoreError`` when signing is on without a key)."""
    from headend.security.settings import SecuritySettings
    from headend.security.settings import make_signer as from_security

    security = SecuritySettings.from_extra(settings.extra, settings.source or "defaults")
    return from_security(security)


def make_dispatcher(
    engine: Engine,
    settings: Settings,
    clock: Clock,
    signer: Signer,
    encryption: EncryptionService | None = None,
) -> tuple[Dispatcher, OutboxPublisher]:
    """The dispatcher publishing through ``mqtt_outbox`` (the ingest's connection)."""
    guards, commands = ops_settings(settings.extra, settings.source)
    esam = EsamSettings.from_extra(settings.extra, settings.source or "defaults")
    flow = FlowSettings()
    if esam is not None:
        flow = FlowSettings(session_seconds=esam.session_seconds, max_attempts=esam.max_attempts)
    publisher = OutboxPublisher(engine, clock)
    dispatcher = Dispatcher(
        engine, publisher, clock, guards, commands, signer=signer, encryption=encryption, flow=flow
    )
    return dispatcher, publisher
