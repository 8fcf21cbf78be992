"""Language of FHIR text: the element's own text, or a FHIR translation extension.

A questionnaire is written in its ``language`` (the shipped ones in Chinese, zh-CN); each
translatable string (``title``, ``text``, ``display``) may carry other languages in its
primitive extension (``_text`` etc.) with the standard
``http://hl7.org/fhir/StructureDefinition/translation`` extension (``lang`` + ``content``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


def family(language: str) -> str:
    """ "zh-hans", "zh-CN", "zh" → "zh"; "en-GB" → "en"."""
    return (language or "").replace("_", "-").split("-")[0].lower()


def translations(element: Mapping[str, Any], field: str) -> dict[str, str]:
    """{language: text} from the translation extensions of ``element[field]``."""
    found: dict[str, str] = {}
    primitive = element.get(f"_{field}")
    if not isinstance(primitive, Mapping):
        return found
    for ext in primitive.get("extension") or []:
        if not isinstance(ext, Mapping) or ext.get("url") != TRANSLATION:
            continue
        lang = content = None
        for part in ext.get("extension") or []:
            if not isinstance(part, Mapping):
                continue
            if part.get("url") == "lang":
                lang = part.get("valueCode")
            elif part.get("url") == "content":
                content = part.get("valueString") or part.get("valueMarkdown")
        if isinstance(lang, str) and isinstance(content, str):
            found[lang] = content
    return found


def text(element: Mapping[str, Any], field: str, language: str, base_language: str = "") -> str:
    """The text of ``element[field]`` in ``language``: an exact or same-family translation,
    else the element's own text."""
    own = element.get(field)
    own_text = own if isinstance(own, str) else ""
    if base_language and family(base_language) == family(language):
        return own_text
    options = translations(element, field)
    if language in options:
        return options[language]
    wanted = family(language)
    for lang, content in options.items():
        if family(lang) == wanted:
            return content
    return own_text
