"""What a sender wrote next to a reference CareLoop rebuilds from its own row.

The reference to the patient (``subject``, ``patient``) always points at CareLoop's own id,
so it is rebuilt on every read and not kept with the rest of the resource; the text the
sender put beside it (``display``, ``type``) is kept apart in ``fhir_extra["beside"]`` and
returned as it was sent, since the patient a record belongs to never changes.
"""

from __future__ import annotations

from typing import Any

_KEPT_BESIDE = ("type", "display")


def remember(obj: Any, resource: dict[str, Any], element: str) -> None:
    """Keep the display and type sent with ``element`` (call after ``Mapper.keep``)."""
    found = resource.get(element)
    beside = (
        {k: found[k] for k in _KEPT_BESIDE if isinstance(found.get(k), str)}
        if isinstance(found, dict)
        else {}
    )
    if not beside or not isinstance(obj.fhir_extra, dict):
        return
    obj.fhir_extra["beside"] = {element: beside}
    type(obj)._default_manager.filter(pk=obj.pk).update(fhir_extra=obj.fhir_extra)


def reference(obj: Any, element: str, target: str) -> dict[str, Any]:
    """``{"reference": target}`` with the display and type the sender gave ``element``."""
    out: dict[str, Any] = {"reference": target}
    extra = getattr(obj, "fhir_extra", None)
    beside = extra.get("beside") if isinstance(extra, dict) else None
    kept = beside.get(element) if isinstance(beside, dict) else None
    if isinstance(kept, dict):
        out.update({k: v for k, v in kept.items() if k in _KEPT_BESIDE and isinstance(v, str)})
    return out
