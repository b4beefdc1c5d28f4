"""A change's sessions as typed values: what ``Change.items`` holds, read and written only here.

Stored as JSON in the ``changes.items`` column, in the shape it always had (``session_id``,
``uid``, ``position``, ``from``/``to`` as ``[start, end]`` ISO strings, ``applied``), so no
migration is needed; the column type converts both ways, so every reader gets ``ChangeItem``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, TypeDecorator


@dataclass(frozen=True, slots=True)
class Times:
    """A session's start and end (aware datetimes)."""

    start: datetime
    end: datetime

    def to_data(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat()]

    @classmethod
    def from_data(cls, data: list[str]) -> Times:
        start, end = (datetime.fromisoformat(t) for t in data)
        return cls(start, end)


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One session touched by a change: its times before, after (None: cancelled), and whether
    the owner's calendar has it yet."""

    session_id: int
    uid: str
    position: int
    before: Times
    after: Times | None
    applied: bool = False

    def done(self) -> ChangeItem:
        return replace(self, applied=True)

    def to_data(self) -> dict[str, object]:
        return {
            "session_id": self.session_id,
            "uid": self.uid,
            "position": self.position,
            "from": self.before.to_data(),
            "to": self.after.to_data() if self.after else None,
            "applied": self.applied,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ChangeItem:
        return cls(
            session_id=int(data["session_id"]),
            uid=str(data["uid"]),
            position=int(data["position"]),
            before=Times.from_data(data["from"]),
            after=Times.from_data(data["to"]) if data.get("to") else None,
            applied=bool(data.get("applied")),
        )


class ChangeItems(TypeDecorator[list[ChangeItem]]):
    """``list[ChangeItem]`` in Python, the JSON list above in the database."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: list[ChangeItem] | None, dialect: Any) -> Any:
        return None if value is None else [item.to_data() for item in value]

    def process_result_value(self, value: Any, dialect: Any) -> list[ChangeItem] | None:
        return None if value is None else [ChangeItem.from_data(item) for item in value]
