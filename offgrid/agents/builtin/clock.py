"""`current_time`: the date and time now, on this machine's clock, in its time zone or in a named
IANA one. Zone names come from the system's time zone database (or the tzdata package); a
machine without either still answers in UTC and its local time, and says so."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timezone, tzinfo

from ..tools import ToolContext, ToolResult
from .base import BuiltinTool, Refused, string

MAX_ZONE_CHARS = 64
_UTC_NAMES = {"utc", "z", "gmt", "etc/utc", "etc/gmt"}


class CurrentTime(BuiltinTool):
    name = "current_time"
    description = ("The current date, time and weekday, in this machine's time zone or in the "
                   "IANA time zone named, e.g. \"Europe/Paris\" or \"UTC\".")
    parameters = {
        "type": "object",
        "properties": {"timezone": {"type": "string", "maxLength": MAX_ZONE_CHARS,
                                    "description": "an IANA time zone name; leave it out for "
                                                   "this machine's"}},
        "additionalProperties": False,
    }
    timeout_s = 5.0

    def run(self, arguments: dict, context: ToolContext) -> ToolResult:
        name = string(arguments, "timezone", MAX_ZONE_CHARS, default="").strip()
        now = datetime.now(timezone.utc)
        if not name:
            return ToolResult(_shown(now.astimezone(), "this machine's time zone"))
        return ToolResult(_shown(now.astimezone(_zone(name)), name))


def _zone(name: str) -> tzinfo:
    if name.lower() in _UTC_NAMES:
        return timezone.utc  # known without a time zone database
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone's form
        pass
    if not zoneinfo.available_timezones():
        local = datetime.now().astimezone()
        raise Refused(f"This machine has no time zone database, so {name!r} is unknown here. "
                      f"UTC is now {_shown(local.astimezone(timezone.utc), 'UTC')}; "
                      f"this machine's time is {_shown(local, 'its own time zone')}")
    raise Refused(f"Unknown time zone {name!r}: give an IANA name such as \"Europe/Paris\", "
                  "\"America/New_York\", \"Asia/Tokyo\" or \"UTC\"")


def _shown(moment: datetime, zone: str) -> str:
    abbreviation = moment.tzname()
    return (f"{moment.isoformat(timespec='seconds')}, {moment:%A %d %B %Y}, "
            f"{zone}{f' ({abbreviation})' if abbreviation not in (None, zone) else ''}")
