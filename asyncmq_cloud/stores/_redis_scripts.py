"""The Lua scripts of :class:`~asyncmq_cloud.stores.redis.RedisStateStore`, as sent to Redis.

Job scripts (``state_{name}.lua`` taking ``prefix, ...`` as ARGV) are prefixed with
the state sets of :mod:`asyncmq_cloud.core.states`, generated as Lua tables
(``CLAIMABLE['waiting'] == true``), and with ``state_common.lua``. The sets thus
have one source; the rules that read them (``state_claim.lua``) are checked
against ``states.claimable`` by the store contract suite.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from asyncmq_cloud.core import states
from asyncmq_cloud.redis import load_lua

#: Scripts that start with ``state_common.lua`` (they take ``prefix, ...`` as ARGV).
JOB_SCRIPTS = (
    "claim", "transition", "create", "heartbeat", "set_state", "update_payload", "delete",
    "add_dependencies", "resolve_dependency", "count", "stalled", "promote", "summary", "page",
)  # fmt: skip
PLAIN_SCRIPTS = ("workers", "acquire_lock", "release_lock")
#: The sets of ``core/states.py`` the scripts read, by their Lua name.
LUA_SETS: dict[str, Collection[str]] = {
    "CLAIMABLE": states.CLAIMABLE,
    "CLAIMABLE_WHEN_DUE": states.CLAIMABLE_WHEN_DUE,
    "CLAIMABLE_WHEN_STALE": states.CLAIMABLE_WHEN_STALE,
    "PROMOTABLE": states.PROMOTABLE,
    "KNOWN_STATES": states.ALL_STATES,
}
#: Single state names the scripts read, by their Lua name.
LUA_NAMES: dict[str, str] = {"CLAIMED": states.CLAIMED}
_STATE_NAME = re.compile(r"[a-z][a-z-]*")


def lua_state_sets() -> str:
    """``local NAME = { ['state'] = true, ... }`` for each of :data:`LUA_SETS`, ``local NAME = 'state'``
    for each of :data:`LUA_NAMES`."""
    lines = ["-- Generated from asyncmq_cloud/core/states.py by stores/_redis_scripts.py."]
    for name, members in {**LUA_SETS, **{n: [v] for n, v in LUA_NAMES.items()}}.items():
        if not all(_STATE_NAME.fullmatch(state) for state in members):
            raise ValueError(f"state names of {name} are not plain Lua string literals: {sorted(members)}")
    for name, members in LUA_SETS.items():
        entries = ", ".join(f"['{state}'] = true" for state in sorted(members))
        lines.append(f"local {name} = {{ {entries} }}")
    lines += [f"local {name} = '{state}'" for name, state in LUA_NAMES.items()]
    return "\n".join(lines)


def load_script(name: str) -> str:
    """The text of script ``name`` (``state_{name}.lua``, with the shared prefix for job scripts).

    Args:
        name: one of :data:`JOB_SCRIPTS` or :data:`PLAIN_SCRIPTS`.
    """
    body = load_lua(f"state_{name}")
    if name in JOB_SCRIPTS:
        common = load_lua("state_common")
        body = f"{lua_state_sets()}\n{common}\n{body}"
    return body
