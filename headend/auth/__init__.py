"""Users, roles, area scopes, password hashing and bearer tokens.

Roles are ordered ``viewer < operator < supervisor < admin``: viewers read, operators create
commands, supervisors approve them (and set the guard-rail switches), admins manage users and the
archive.  A user scoped to areas sees and commands only meters of those areas (``areas=None``: all).

Exceptions (all ``headend.db.errors.HeadendError``)::

    AuthError
    ├── Unauthenticated   no, a bad or an expired token; wrong name or password    → 401
    └── Forbidden         authenticated, but the role or the area scope forbids it → 403
"""

from headend.auth.errors import AuthError, Forbidden, Unauthenticated
from headend.auth.roles import Role, User

__all__ = ["AuthError", "Forbidden", "Role", "Unauthenticated", "User"]
