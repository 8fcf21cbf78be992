"""HL7 v2 messages as data: segments, fields, repetitions, components, escapes, character sets.

A message is bytes. MSH-1 names the field separator and MSH-2 the encoding characters
(component, repetition, escape, subcomponent, and from v2.7 truncation). Segments end with CR;
LF and CRLF are accepted too. MSH-18 names the character set (UNICODE UTF-8 when absent;
GB18030 and GBK are common in Chinese HIS). A UTF-8 byte-order mark is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_SEGMENTS = 5000

# MSH-18 values (HL7 table 0211) → Python codecs.
CHARSETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
    "GBK": "gbk",
    "GB2312": "gb2312",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
}


class ParseError(ValueError):
    """The bytes are not an HL7 v2 message; the text says why."""


@dataclass(frozen=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass
class Segment:
    name: str
    fields: list[str]  # fields[0] is the name; for MSH fields[1] is the field separator
    enc: Encoding

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 <= n < len(self.fields) else ""

    def reps(self, n: int) -> list[str]:
        raw = self.raw(n)
        if self.name == "MSH" and n <= 2:
            return [raw]
        return [r for r in raw.split(self.enc.repetition)] if raw else []

    def component(self, n: int, c: int = 1, rep: int = 0, sub: int = 0) -> str:
        """Field n, component c (1-based), repetition rep, subcomponent sub: unescaped text."""
        reps = self.reps(n)
        if rep >= len(reps):
            return ""
        if self.name == "MSH" and n <= 2:
            return reps[0]
        comps = reps[rep].split(self.enc.component)
        if c - 1 >= len(comps):
            return ""
        value = comps[c - 1]
        if sub:
            subs = value.split(self.enc.subcomponent)
            value = subs[sub - 1] if sub - 1 < len(subs) else ""
        return unescape(value, self.enc)

    def components(self, n: int, rep: int = 0) -> list[str]:
        reps = self.reps(n)
        if rep >= len(reps):
            return []
        return [unescape(c, self.enc) for c in reps[rep].split(self.enc.component)]

    def __getitem__(self, n: int) -> str:
        return self.component(n)


@dataclass
class Message:
    segments: list[Segment]
    enc: Encoding
    charset: str
    text: str
    errors: list[str] = field(default_factory=list)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @property
    def message_type(self) -> str:
        return self.msh.component(9, 1)

    @property
    def trigger(self) -> str:
        return self.msh.component(9, 2)

    @property
    def type_code(self) -> str:
        return f"{self.message_type}^{self.trigger}" if self.trigger else self.message_type

    @property
    def control_id(self) -> str:
        return self.msh.component(10)

    @property
    def sending(self) -> str:
        """MSH-3 and MSH-4 (application, facility) as one key for idempotency."""
        return f"{self.msh.raw(3)}|{self.msh.raw(4)}"

    @property
    def version(self) -> str:
        return self.msh.component(12)


_ESCAPES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}


def unescape(value: str, enc: Encoding) -> str:
    r"""Resolve \F\ \S\ \T\ \R\ \E\, \.br\ (line break) and \Xhh..\ (hex bytes as UTF-8)."""
    esc = enc.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end == -1:
            out.append(value[i:])
            break
        code = value[i + 1 : end]
        if code in _ESCAPES:
            out.append(getattr(enc, _ESCAPES[code]))
        elif code in (".br", ".sp"):
            out.append("\n")
        elif code.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", code):
            out.append(bytes.fromhex(code[1:]).decode("utf-8", "replace"))
        elif code.startswith(("H", "N", "Z", "C", "M", ".")):
            pass  # highlighting and formatting hints carry no text
        else:
            out.append(value[i : end + 1])
        i = end + 1
    return "".join(out)


def escape(value: str, enc: Encoding = Encoding()) -> str:
    """Text safe inside one component of a message we write."""
    value = value.replace(enc.escape, f"{enc.escape}E{enc.escape}")
    for char, code in (
        (enc.field, "F"),
        (enc.component, "S"),
        (enc.subcomponent, "T"),
        (enc.repetition, "R"),
    ):
        value = value.replace(char, f"{enc.escape}{code}{enc.escape}")
    return value.replace("\r", " ").replace("\n", " ")


def _declared_charset(data: bytes) -> str:
    """MSH-18 read from the raw bytes (ASCII in every supported character set)."""
    first = re.split(rb"[\r\n]", data, maxsplit=1)[0]
    if len(first) < 8 or not first.startswith(b"MSH"):
        return ""
    sep = first[3:4]
    parts = first.split(sep)
    if len(parts) <= 17:
        return ""
    reps = parts[17].split(first[5:6]) if len(first) > 5 else [parts[17]]
    return reps[0].decode("ascii", "replace").strip().upper()


def decode(data: bytes) -> tuple[str, str]:
    """(text, codec) of a message's bytes, honouring a byte-order mark and MSH-18."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    declared = _declared_charset(data)
    codec = CHARSETS.get(declared)
    if codec is None:
        raise ParseError(f"unsupported character set in MSH-18: {declared[:30]!r}")
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"the message is not valid {declared or 'UNICODE UTF-8'} text "
            f"(byte {exc.start}); set MSH-18 to its character set"
        ) from None


def parse(data: bytes | str) -> Message:
    """A `Message`, or `ParseError` saying what is wrong."""
    if isinstance(data, bytes):
        text, codec = decode(data)
    else:
        text, codec = data.lstrip("\ufeff"), "utf-8"
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r \t\x0b\x1c")
    if not text.startswith("MSH"):
        raise ParseError("the message does not start with an MSH segment")
    if len(text) < 8:
        raise ParseError("the MSH segment is too short")
    sep = text[3]
    if sep.isalnum() or sep in "\r ":
        raise ParseError("MSH-1 is not a field separator")
    enc_end = text.find(sep, 4)
    if enc_end == -1:
        raise ParseError("MSH-2 (encoding characters) is not terminated")
    chars = text[4:enc_end]
    if len(chars) < 4 or len(set(chars[:4] + sep)) != 5:
        raise ParseError("MSH-2 must hold four distinct encoding characters")
    enc = Encoding(sep, chars[0], chars[1], chars[2], chars[3])
    segments: list[Segment] = []
    for line in text.split("\r"):
        line = line.strip("\n")
        if not line.strip():
            continue
        if len(segments) >= MAX_SEGMENTS:
            raise ParseError(f"more than {MAX_SEGMENTS} segments")
        name = line[:3]
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", name) or (len(line) > 3 and line[3] != sep):
            raise ParseError(f"not a segment: {line[:20]!r}")
        if name == "MSH":
            if segments:
                raise ParseError("a second MSH segment inside one message")
            # MSH-1 is the separator itself, so MSH-n is fields[n] after inserting it.
            parts = [name, sep] + line[4:].split(sep)
        else:
            parts = line.split(sep)
        segments.append(Segment(name, parts, enc))
    message = Message(segments, enc, codec, text)
    if not message.message_type:
        raise ParseError("MSH-9 (message type) is empty")
    if not message.control_id:
        raise ParseError("MSH-10 (message control id) is empty")
    return message
