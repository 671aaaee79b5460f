"""Built-in plugin: ``clock``, the current date and time in a timezone."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runtime.tools import ValidationError, tool

#: Common abbreviations a person types, mapped to a zone (or a fixed offset zone name).
ALIASES = {
    "UTC": "UTC",
    "GMT": "UTC",
    "Z": "UTC",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "BST": "Europe/London",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland",
}


def resolve_zone(name: str) -> ZoneInfo | dt_timezone:
    """The zone for an IANA name or a common abbreviation (:data:`ALIASES`); empty means UTC.

    Raises:
        ValidationError: the name is neither.
    """
    key = name.strip() or "UTC"
    key = ALIASES.get(key.upper(), key)
    if key == "UTC":
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown timezone {name!r}; use an IANA name like Europe/Paris") from exc


@tool
def clock(timezone: str = "UTC") -> str:
    """The current date and time in a timezone.

    Args:
        timezone: IANA timezone name (e.g. Europe/Paris) or a common abbreviation (UTC, PST).
    """
    now = datetime.now(resolve_zone(timezone))
    return f"{now:%A %d %B %Y, %H:%M:%S} {now.tzname()} ({timezone.strip() or 'UTC'}; ISO {now.isoformat(timespec='seconds')})"
