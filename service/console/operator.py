"""Who is signed in to the console, and what their role lets them do."""

from __future__ import annotations

from typing import Final

import msgspec

from ..accounts.users import ROLES, Role

_RANK: Final = {role: rank for rank, role in enumerate(ROLES)}


class Operator(msgspec.Struct, frozen=True):
    """The signed-in user: ``viewer`` reads; ``editor`` also steers editions, lists and readers; ``admin`` all."""

    user_id: int
    email: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether this operator's role is ``role`` or above it."""
        return _RANK[self.role] >= _RANK[role]
