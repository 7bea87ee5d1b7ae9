"""Dates the way Kestra's Pebble filters see them: Java ``DateTimeFormatter`` patterns.

Kestra formats with ``java.time`` patterns (``yyyy-MM-dd HH:mm:ss``) and a few
named formats (``iso``, ``sql``, ``iso_date_time``...), converts every instant
to the requested ``timeZone`` (default: the system zone) and accepts as input a
datetime, a date (noon), epoch seconds or a string (ISO-8601, or any pattern
given as ``existingFormat``). This module reproduces that with the stdlib.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ISO = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
_PATTERNS = {
    "iso": _ISO,
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    # FormatStyle.* for an English locale (java.time CLDR data, Java 17).
    "short": "M/d/yy, h:mm a",
    "medium": "MMM d, y, h:mm:ss a",
    "long": "MMMM d, y 'at' h:mm:ss a z",
    "full": "EEEE, MMMM d, y 'at' h:mm:ss a zzzz",
}
_MONTHS = [calendar.month_name[i] for i in range(13)]
_DAYS = list(calendar.day_name)  # Monday first, like datetime.weekday()


class DateError(ValueError):
    pass


# -- zones -----------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """``ZoneId.of(name)``; ``None`` is the system default zone."""
    if name is None:
        return datetime.now().astimezone().tzinfo or UTC
    if name in ("Z", "UTC", "GMT", "UT"):
        return UTC
    m = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", name)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(-delta if m.group(1) == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DateError(f"Unknown time-zone ID: {name}") from None


# -- input conversion (AbstractDate.convert) -----------------------------------------------------------
def to_datetime(value: Any, tz: tzinfo, existing_format: str | None = None) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(12), tz)  # LocalDate -> noon, as Kestra does
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz)  # epoch seconds
    if isinstance(value, str):
        if existing_format is not None:
            return parse(value, existing_format, tz)
        return _parse_iso(value, tz)
    raise DateError(f"Unable to convert '{value}' of type {type(value).__name__} to a date")


def _parse_iso(text: str, tz: tzinfo) -> datetime:
    s = text.strip()
    region = None
    m = re.fullmatch(r"(.*?)\[([^\]]+)\]", s)  # 2024-01-02T03:04:05+01:00[Europe/Paris]
    if m:
        s, region = m.group(1), m.group(2)
    # Python keeps microseconds only: trim nanoseconds.
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise DateError(f"Text '{text}' could not be parsed as an ISO-8601 date") from None
    if region:
        dt = dt.astimezone(zone(region)) if dt.tzinfo else dt.replace(tzinfo=zone(region))
    return dt if dt.tzinfo else dt.replace(tzinfo=tz)


# -- formatting -----------------------------------------------------------------------------------
def format_date(dt: datetime, fmt: str | None, tz: tzinfo) -> str:
    """Format an instant in ``tz`` with a Java pattern or one of Kestra's named formats."""
    dt = dt.astimezone(tz)
    fmt = fmt or "iso"
    special = _ISO_FORMATS.get(fmt)
    if special is not None:
        return special(dt)
    return "".join(f(dt) for f in _compile_pattern(_PATTERNS.get(fmt, fmt)))


def _fraction(dt: datetime) -> str:
    """ISO fraction: omitted when zero, else as many digits as needed (trailing zeros dropped)."""
    if not dt.microsecond:
        return ""
    return "." + f"{dt.microsecond:06d}".rstrip("0")


def _offset(dt: datetime, zulu: bool = True, colon: bool = True) -> str:
    off = dt.utcoffset() or timedelta(0)
    if zulu and not off:
        return "Z"
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    h, rem = divmod(abs(total), 3600)
    mi, sec = divmod(rem, 60)
    out = f"{sign}{h:02d}:{mi:02d}" if colon else f"{sign}{h:02d}{mi:02d}"
    return out + (f":{sec:02d}" if sec and colon else "")


def _region(dt: datetime) -> str:
    key = getattr(dt.tzinfo, "key", None)
    return f"[{key}]" if key else ""


def _iso_local_time(dt: datetime) -> str:
    return f"{dt:%H:%M:%S}{_fraction(dt)}"


_ISO_FORMATS = {
    "iso_date_time": lambda d: f"{d:%Y-%m-%d}T{_iso_local_time(d)}{_offset(d)}{_region(d)}",
    "iso_zoned_date_time": lambda d: f"{d:%Y-%m-%d}T{_iso_local_time(d)}{_offset(d)}{_region(d)}",
    "iso_offset_date_time": lambda d: f"{d:%Y-%m-%d}T{_iso_local_time(d)}{_offset(d)}",
    "iso_date": lambda d: f"{d:%Y-%m-%d}{_offset(d)}",
    "iso_time": lambda d: f"{_iso_local_time(d)}{_offset(d)}",
    "iso_offset_time": lambda d: f"{_iso_local_time(d)}{_offset(d)}",
    "iso_local_date": lambda d: f"{d:%Y-%m-%d}",
    "iso_local_time": _iso_local_time,
    "iso_local_date_time": lambda d: f"{d:%Y-%m-%d}T{_iso_local_time(d)}",
    "iso_instant": lambda d: f"{d.astimezone(UTC):%Y-%m-%dT%H:%M:%S}{_fraction(d)}Z",
    "iso_ordinal_date": lambda d: f"{d:%Y-%j}{_offset(d)}",
    "iso_week_date": lambda d: "{}-W{:02d}-{}{}".format(*d.isocalendar(), _offset(d)),
    "rfc_1123_date_time": lambda d: (
        f"{_DAYS[d.weekday()][:3]}, {d.day} {_MONTHS[d.month][:3]} {d:%Y %H:%M:%S} "
        + ("GMT" if not d.utcoffset() else _offset(d, zulu=False, colon=False))
    ),
}


def _pad(n: int, width: int) -> str:
    return str(n).zfill(width)


def _field(letter: str, count: int):
    if letter in "yu":
        return (lambda d: _pad(d.year % 100, 2)) if count == 2 else (lambda d: _pad(d.year, count))
    if letter == "Y":
        return (
            (lambda d: _pad(d.isocalendar()[0] % 100, 2))
            if count == 2
            else (lambda d: _pad(d.isocalendar()[0], count))
        )
    if letter in "ML":
        if count >= 5:
            return lambda d: _MONTHS[d.month][0]
        if count == 4:
            return lambda d: _MONTHS[d.month]
        if count == 3:
            return lambda d: _MONTHS[d.month][:3]
        return lambda d: _pad(d.month, count)
    if letter in "Qq":
        if count == 3:
            return lambda d: f"Q{(d.month - 1) // 3 + 1}"
        if count >= 4:
            return lambda d: f"{['1st', '2nd', '3rd', '4th'][(d.month - 1) // 3]} quarter"
        return lambda d: _pad((d.month - 1) // 3 + 1, count)
    if letter == "d":
        return lambda d: _pad(d.day, count)
    if letter == "D":
        return lambda d: _pad(d.timetuple().tm_yday, count)
    if letter == "w":
        return lambda d: _pad(d.isocalendar()[1], count)
    if letter in "Eec":
        if letter != "E" and count <= 2:
            return lambda d: _pad(d.isoweekday(), count)
        if count >= 5:
            return lambda d: _DAYS[d.weekday()][0]
        if count == 4:
            return lambda d: _DAYS[d.weekday()]
        return lambda d: _DAYS[d.weekday()][:3]
    if letter == "a":
        return lambda d: "AM" if d.hour < 12 else "PM"
    if letter == "H":
        return lambda d: _pad(d.hour, count)
    if letter == "k":
        return lambda d: _pad(d.hour or 24, count)
    if letter == "K":
        return lambda d: _pad(d.hour % 12, count)
    if letter == "h":
        return lambda d: _pad(d.hour % 12 or 12, count)
    if letter == "m":
        return lambda d: _pad(d.minute, count)
    if letter == "s":
        return lambda d: _pad(d.second, count)
    if letter == "S":
        return lambda d: f"{d.microsecond * 1000:09d}"[:count].ljust(count, "0")
    if letter == "n":
        return lambda d: _pad(d.microsecond * 1000, count)
    if letter == "A":
        return lambda d: _pad(
            ((d.hour * 60 + d.minute) * 60 + d.second) * 1000 + d.microsecond // 1000, count
        )
    if letter == "G":
        return lambda d: "AD" if count <= 3 else "Anno Domini"
    if letter == "V":
        return lambda d: getattr(d.tzinfo, "key", None) or _offset(d)
    if letter == "z":
        if count >= 4:
            return lambda d: _long_zone_name(d)
        return lambda d: d.tzname() or _offset(d)
    if letter == "O":
        return lambda d: "GMT" + ("" if not d.utcoffset() else _offset(d, zulu=False).lstrip("0"))
    if letter in "Xx":
        zulu = letter == "X"
        if count == 1:
            return lambda d: _offset(d, zulu, colon=False)[:3] if d.utcoffset() or not zulu else "Z"
        if count in (2, 4):
            return lambda d: _offset(d, zulu, colon=False)
        return lambda d: _offset(d, zulu, colon=True)
    if letter == "Z":
        if count == 4:
            return lambda d: "GMT" + ("" if not d.utcoffset() else _offset(d, zulu=False))
        if count == 5:
            return lambda d: _offset(d, zulu=True, colon=True)
        return lambda d: _offset(d, zulu=False, colon=False)
    raise DateError(f"Unknown pattern letter: {letter}")


def _long_zone_name(d: datetime) -> str:
    name = d.tzname() or ""
    return {
        "UTC": "Coordinated Universal Time",
        "CET": "Central European Standard Time",
        "CEST": "Central European Summer Time",
        "GMT": "Greenwich Mean Time",
    }.get(name, name)


@lru_cache(maxsize=512)
def _compile_pattern(pattern: str) -> tuple:
    parts: list = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            j = pattern.find("'", i + 1)
            while j != -1 and j + 1 < n and pattern[j + 1] == "'":  # '' inside a quoted literal
                j = pattern.find("'", j + 2)
            if j == -1:
                raise DateError(f"Pattern ends with an incomplete string literal: {pattern}")
            literal = pattern[i + 1 : j].replace("''", "'") if j > i + 1 else "'"
            parts.append(lambda d, s=literal: s)
            i = j + 1
        elif c in "[]":  # optional sections: always printed when formatting
            i += 1
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            parts.append(_field(c, j - i))
            i = j
        else:
            parts.append(lambda d, s=c: s)
            i += 1
    return tuple(parts)


# -- parsing with a Java pattern (existingFormat) ---------------------------------------------------
_TEXT_MONTHS = {name.lower(): i for i, name in enumerate(_MONTHS) if name}
_TEXT_MONTHS.update({name[:3].lower(): i for i, name in enumerate(_MONTHS) if name})


@lru_cache(maxsize=256)
def _parse_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    seen: set[str] = set()
    while i < n:
        c = pattern[i]
        if c == "'":
            j = pattern.find("'", i + 1)
            if j == -1:
                raise DateError(f"Pattern ends with an incomplete string literal: {pattern}")
            out.append(re.escape(pattern[i + 1 : j] if j > i + 1 else "'"))
            i = j + 1
            continue
        if c in "[]":
            i += 1
            continue
        if not (c.isascii() and c.isalpha()):
            out.append(re.escape(c))
            i += 1
            continue
        j = i
        while j < n and pattern[j] == c:
            j += 1
        count = j - i
        i = j
        group = c if c not in seen else None
        seen.add(c)

        def named(expr: str, group: str | None = group) -> str:
            return f"(?P<{group}>{expr})" if group else f"(?:{expr})"

        if c in "yuY":
            out.append(named(r"\d{2}" if count == 2 else r"[+-]?\d{4,9}" if count >= 4 else r"[+-]?\d+"))
        elif c in "ML":
            out.append(named(r"[A-Za-z]+" if count >= 3 else (r"\d{2}" if count == 2 else r"\d{1,2}")))
        elif c in "dHhKkmsD":
            out.append(named(rf"\d{{{count}}}" if count >= 2 else r"\d{1,3}" if c == "D" else r"\d{1,2}"))
        elif c == "S":
            out.append(named(rf"\d{{{count}}}"))
        elif c == "n":
            out.append(named(r"\d{1,9}"))
        elif c == "a":
            out.append(named(r"[AaPp][Mm]"))
        elif c in "Eec":
            out.append(r"(?:[A-Za-z]+|\d)")
        elif c in "XxZO":
            out.append(named(r"Z|GMT|(?:GMT)?[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?"))
        elif c in "Vz":
            out.append(named(r"[A-Za-z][A-Za-z0-9_/+-]*"))
        else:
            raise DateError(f"Unsupported pattern letter for parsing: {c}")
    return re.compile("".join(out))


def parse(text: str, pattern: str, tz: tzinfo) -> datetime:
    if pattern in _ISO_FORMATS or pattern == "iso" or pattern == "iso_sec":
        return _parse_iso(text, tz)
    m = _parse_regex(_PATTERNS.get(pattern, pattern)).fullmatch(text.strip())
    if not m:
        raise DateError(f"Text '{text}' could not be parsed with pattern '{pattern}'")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    year = int(g.get("y") or g.get("u") or g.get("Y") or 1970)
    if len(g.get("y") or g.get("u") or "0000") == 2:
        year += 2000
    month_text = g.get("M") or g.get("L") or "1"
    month = int(month_text) if month_text.isdigit() else _TEXT_MONTHS.get(month_text.lower(), 0)
    if not month:
        raise DateError(f"Text '{text}' has an unknown month '{month_text}'")
    day = int(g.get("d", 1))
    hour = int(g.get("H") or g.get("k") or 0) % 24
    if "h" in g or "K" in g:
        hour = int(g.get("h") or g.get("K") or 0) % 12
        if g.get("a", "AM").upper() == "PM":
            hour += 12
    fraction = g.get("S") or (f"{int(g['n']):09d}" if "n" in g else "0")
    micro = int((fraction + "000000")[:6])
    dt = datetime(year, month, day, hour, int(g.get("m", 0)), int(g.get("s", 0)), micro)
    if "D" in g:
        dt = dt.replace(month=1, day=1) + timedelta(days=int(g["D"]) - 1)
    off = g.get("X") or g.get("x") or g.get("Z") or g.get("O")
    region = g.get("V") or g.get("z")
    if off is not None:
        return dt.replace(tzinfo=zone(off))
    if region is not None:
        return dt.replace(tzinfo=zone(region))
    return dt.replace(tzinfo=tz)


# -- arithmetic (ZonedDateTime.plus(amount, ChronoUnit)) --------------------------------------------
_EXACT_UNITS = {
    "NANOS": timedelta(microseconds=0.001),
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}


def add(dt: datetime, amount: int, unit: str) -> datetime:
    unit = unit.upper()
    if unit in _EXACT_UNITS:  # time-based units move along the instant time-line
        return (dt.astimezone(UTC) + _EXACT_UNITS[unit] * amount).astimezone(dt.tzinfo)
    if unit in ("DAYS", "WEEKS"):  # date-based units move the local date-time
        return _relocalize(
            dt.replace(tzinfo=None) + timedelta(days=amount * (7 if unit == "WEEKS" else 1)), dt
        )
    if unit in _MONTH_UNITS:
        months = dt.year * 12 + dt.month - 1 + amount * _MONTH_UNITS[unit]
        year, month = divmod(months, 12)
        day = min(dt.day, calendar.monthrange(year, month + 1)[1])  # clamp like java.time
        return _relocalize(dt.replace(tzinfo=None, year=year, month=month + 1, day=day), dt)
    raise DateError(f"No enum constant java.time.temporal.ChronoUnit.{unit}")


def _relocalize(local: datetime, like: datetime) -> datetime:
    return local.replace(tzinfo=like.tzinfo)
