"""Roles (ordered) and the authenticated user with an optional area scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from headend.auth.errors import Forbidden


class Role(StrEnum):
    """What a user may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


@dataclass(frozen=True)
class User:
    """An authenticated user; ``areas`` None means every area."""

    name: str
    role: Role
    areas: frozenset[str] | None = None

    def sees(self, area: str | None) -> bool:
        """Whether ``area`` is inside this user's scope."""
        return self.areas is None or (area is not None and area in self.areas)

    def sees_all(self, areas: Iterable[str | None]) -> bool:
        return all(self.sees(a) for a in areas)

    def require(self, role: Role) -> None:
        """Raise ``Forbidden`` unless this user has at least ``role``."""
        if not self.role.at_least(role):
            raise Forbidden(f"this needs the {role} role; {self.name} is a {self.role}")

    def require_areas(self, areas: Iterable[str | None]) -> None:
        """Raise ``Forbidden`` naming the first area outside this user's scope."""
        outside = sorted({a or "(no area)" for a in areas if not self.sees(a)})
        if outside:
            raise Forbidden(
                f"{self.name} is scoped to areas {sorted(self.areas or ())} and may not act on "
                f"area {', '.join(outside)}"
            )

    def require_fleet(self) -> None:
        """Raise ``Forbidden`` unless this user is unscoped (fleet-wide)."""
        if self.areas is not None:
            raise Forbidden(f"this is fleet-wide; {self.name} is scoped to areas")
