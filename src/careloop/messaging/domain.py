"""Pure messaging rules: urgent words, attachment types by content, safe file names, SLA.

No database here. The urgent-word list is data: URGENT_WORDS below plus each organisation's
extra words (MessagingSettings.extra_urgent_words, edited in the admin).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# Words and phrases that may mean an emergency, in every language the portal supports.
URGENT_WORDS: tuple[str, ...] = (
    # 简体中文
    "胸痛",
    "胸口痛",
    "胸闷",
    "呼吸困难",
    "喘不上气",
    "喘不过气",
    "昏迷",
    "晕倒",
    "晕过去",
    "自杀",
    "想死",
    "不想活",
    "出血不止",
    "大出血",
    # English
    "chest pain",
    "can't breathe",
    "cannot breathe",
    "can not breathe",
    "cant breathe",
    "shortness of breath",
    "short of breath",
    "fainted",
    "passed out",
    "unconscious",
    "suicide",
    "suicidal",
    "kill myself",
    "end my life",
    "bleeding that won't stop",
    "bleeding won't stop",
    "can't stop bleeding",
)

# Negation right before a word (kept simple on purpose: when in doubt, treat as urgent).
_CJK_NEGATIONS = ("没有", "并无", "没", "无", "不", "未")
_EN_NEGATIONS = frozenset({"no", "not", "without", "never", "denies", "deny", "nor"})
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[a-z0-9']+")


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), one kind of apostrophe, case folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text or "").translate(_APOSTROPHES).casefold()
    return _SPACE.sub(" ", folded).strip()


def _is_cjk(word: str) -> bool:
    return bool(_CJK.search(word))


def _cjk_negated(before: str) -> bool:
    return before.endswith(_CJK_NEGATIONS)


def _en_negated(before: str) -> bool:
    words = _WORD.findall(before)[-2:]
    return any(w in _EN_NEGATIONS or w.endswith("n't") for w in words)


def _matches_cjk(compact: str, word: str) -> bool:
    start = compact.find(word)
    while start != -1:
        if not _cjk_negated(compact[:start]):
            return True
        start = compact.find(word, start + 1)
    return False


def _matches_latin(text: str, word: str) -> bool:
    pattern = re.compile(
        r"(?<![a-z0-9'])" + re.escape(word).replace(r"\ ", r"\s?") + r"(?![a-z0-9])"
    )
    return any(not _en_negated(text[: m.start()]) for m in pattern.finditer(text))


def urgent_words(text: str, extra: Iterable[str] = ()) -> list[str]:
    """The urgent words found in a message (not negated right before), in list order."""
    norm = normalise(text)
    if not norm:
        return []
    compact = norm.replace(" ", "")
    found: list[str] = []
    seen: set[str] = set()
    for raw in (*URGENT_WORDS, *extra):
        word = normalise(raw)
        if not word or word in seen:
            continue
        seen.add(word)
        if _is_cjk(word):
            hit = _matches_cjk(compact, word.replace(" ", ""))
        else:
            hit = _matches_latin(norm, word)
        if hit:
            found.append(raw.strip())
    return found


# --- attachments ---------------------------------------------------------------------------

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class FileType:
    content_type: str
    extension: str
    inline: bool  # shown in the page (images) rather than downloaded


_SIGNATURES: tuple[tuple[bytes, FileType], ...] = (
    (b"\xff\xd8\xff", FileType("image/jpeg", "jpg", True)),
    (b"\x89PNG\r\n\x1a\n", FileType("image/png", "png", True)),
    (b"%PDF-", FileType("application/pdf", "pdf", False)),
)


def sniff(head: bytes) -> FileType | None:
    """The file's type from its first bytes (JPEG, PNG or PDF), whatever its name says."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    return None


def type_of(content_type: str) -> FileType | None:
    return next((k for _m, k in _SIGNATURES if k.content_type == content_type), None)


_UNSAFE_NAME = re.compile(r"[^\w.\- ()\u3400-\u9fff]+")


def safe_name(name: str, kind: FileType) -> str:
    """A display name without paths, control characters or odd symbols, with the real
    extension of its content."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKC", base)
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE_NAME.sub("_", stem).strip(" ._")[:80] or "file"
    return f"{stem}.{kind.extension}"


# --- SLA ---------------------------------------------------------------------------------------


def sla_due(first_unanswered_at: datetime, hours: int) -> datetime:
    return first_unanswered_at + timedelta(hours=hours or 24)


def waited(since: datetime | None, now: datetime) -> timedelta | None:
    return None if since is None else max(now - since, timedelta(0))
