"""The head-end's encryption service for ESAM meters (the utility's 密码机, or a lab stand-in).

``service`` is the interface the command flow uses; ``software`` the laboratory implementation
(SM4, keys in a 0600 file, NOT for production); ``settings`` reads ``[esam]`` of headend.toml and
refuses the software service in production mode.  A network HSM plugs in as an adapter (see
docs/dlt645.md §Security, "Adapter for a utility's encryption machine").
"""

from headend.esam.service import (
    Challenge,
    EncryptionError,
    EncryptionRefused,
    EncryptionService,
    EncryptionUnavailable,
    SessionInfo,
)

__all__ = [
    "Challenge",
    "EncryptionError",
    "EncryptionRefused",
    "EncryptionService",
    "EncryptionUnavailable",
    "SessionInfo",
]
