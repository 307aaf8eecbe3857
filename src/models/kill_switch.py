"""Where a kill switch reaches: every change (`global`) or one agent's (`agent:<id>`)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from changegate.models.request import _NAME as _AGENT_ID

_GLOBAL = "global"
_AGENT = "agent:"
_PATTERN = rf"^({_GLOBAL}|{_AGENT}{_AGENT_ID.strip('^$')})$"


class KillSwitchScope(str):
    """A kill switch's scope: `global`, or `agent:<id>` for one agent's changes.

    A string, so it is stored, signed and compared as the text it is; constructing one
    (directly or as a pydantic field) refuses anything else with a ValueError.
    """

    __slots__ = ()

    GLOBAL: ClassVar[KillSwitchScope]
    PATTERN: ClassVar[str] = _PATTERN

    def __new__(cls, text: str) -> KillSwitchScope:
        """Parse `text`, refusing what is neither `global` nor `agent:<valid agent id>`."""
        if not re.fullmatch(_PATTERN, text):
            raise ValueError(
                f"kill switch scope {text!r} is neither 'global' nor 'agent:<agent id>' "
                "(an agent id is 1 to 128 letters, digits or _.:@/- and starts with a "
                "letter or digit)"
            )
        return super().__new__(cls, text)

    @classmethod
    def for_agent(cls, agent_id: str) -> KillSwitchScope:
        """The scope of one agent's switch."""
        return cls(_AGENT + agent_id)

    @classmethod
    def of(cls, agent_id: str | None) -> KillSwitchScope:
        """The switch of `agent_id`, or the global one when there is no agent."""
        return cls.GLOBAL if agent_id is None else cls.for_agent(agent_id)

    @property
    def is_global(self) -> bool:
        """True for the switch that stops every change."""
        return self == _GLOBAL

    @property
    def agent_id(self) -> str | None:
        """The agent an `agent:` scope names; None for the global one."""
        return None if self.is_global else self.removeprefix(_AGENT)

    def covers(self, agent_id: str) -> bool:
        """Whether a switch with this scope stops changes proposed by `agent_id`."""
        return self.is_global or self.agent_id == agent_id

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate from a string matching `PATTERN`; serialise as that string."""
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(pattern=_PATTERN),
            serialization=core_schema.to_string_ser_schema(),
        )


KillSwitchScope.GLOBAL = KillSwitchScope(_GLOBAL)

__all__ = ["KillSwitchScope"]
