"""The resource types the FHIR facade serves, one ``Mapper`` per type.

A mapper says which CareLoop table a resource type lives in, what may be done with it, how it
is searched and sorted, how it is scoped to what the actor may see, and how it converts between
the row and FHIR JSON. Writes go through the owning app's services, so authorisation, audit,
versioning, rules and enrolment signals are exactly those of the rest of the product.

Adding a type is one module in ``careloop.fhir.resources`` defining a ``Mapper`` subclass
decorated with ``@register`` and its name in ``RESOURCE_MODULES`` below.

Elements CareLoop does not model are kept in the row's ``fhir_extra`` column (when the table
has one) together with a fingerprint of the modelled fields each mapped element came from; on
read, an element is returned as it was sent while its fields are unchanged, and rebuilt from
the row once staff (or a later update) changed them.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.fhir.outcome import FhirError, Issue

RESOURCE_MODULES = (
    "careloop.fhir.resources.patient",
    "careloop.fhir.resources.observation",
    "careloop.fhir.resources.condition",
    "careloop.fhir.resources.allergy",
    "careloop.fhir.resources.encounter",
    "careloop.fhir.resources.medication_request",
    "careloop.fhir.resources.medication_dispense",
    "careloop.fhir.resources.medication_statement",
    "careloop.fhir.resources.consent",
    "careloop.fhir.resources.provenance",
    "careloop.fhir.resources.audit_event",
    "careloop.fhir.resources.practitioner",
    "careloop.fhir.resources.organization",
    "careloop.fhir.resources.practitioner_role",
    "careloop.fhir.resources.care_team",
    "careloop.fhir.resources.careplan",
    "careloop.fhir.resources.task",
    "careloop.fhir.resources.flag",
    "careloop.fhir.resources.subscription",
    "careloop.fhir.resources.scheduling",
    "careloop.fhir.resources.questionnaire",
    "careloop.fhir.resources.communication",
)

# FHIR interactions (CapabilityStatement codes) and the SMART permission letter of each.
INTERACTION_LETTER = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "search-type": "s",
    "create": "c",
    "update": "u",
    "delete": "d",
}
READ_ONLY = frozenset({"read", "vread", "history-instance", "search-type"})
READ_WRITE = frozenset(INTERACTION_LETTER)

# Elements the server owns: never stored from input, never compared on round trip.
SERVER_ELEMENTS = frozenset({"resourceType", "id", "meta", "text"})


@dataclass(frozen=True)
class SearchParam:
    """One search parameter: its FHIR type and how a single value becomes a filter.

    ``build`` receives the parsed value (see careloop.fhir.search) and the actor's context and
    returns a ``Q`` over the mapper's queryset."""

    type: str  # token | date | reference | string | number
    build: Callable[..., Q]
    documentation: str = ""


@dataclass
class History:
    """One version of a resource, as the history and vread interactions show it."""

    version: int
    at: dt.datetime
    change: str  # create | update | delete
    resource: dict[str, Any] | None  # None for a delete


class Context:
    """What a write needs besides the resource: the actor and how references resolve."""

    def __init__(
        self, actor: Actor, references: dict[str, str] | None = None, scopes: Any = None
    ) -> None:
        self.actor = actor
        self.references = references or {}
        # The token's SMART scopes (careloop.fhir.scopes.Scopes); None for a staff session.
        self.scopes = scopes

    def reference_id(self, reference: Any, expected_type: str, expression: str) -> str:
        """The local id a reference (``Patient/12``, a rewritten ``urn:uuid:``) points to."""
        text = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(text, str) or not text:
            raise FhirError.of(
                422, _("A reference to a %(type)s is required.") % {"type": expected_type},
                code="required", expression=expression,
            )  # fmt: skip
        text = self.references.get(text, text)
        kind, _sep, ident = text.rpartition("/")
        kind = kind.rsplit("/", 1)[-1]
        if kind != expected_type or not ident:
            raise FhirError.of(
                422,
                _("Expected a reference to a %(type)s, got “%(ref)s”.")
                % {"type": expected_type, "ref": text[:80]},
                code="value",
                expression=expression,
            )
        return ident


class Mapper:
    """How one FHIR resource type maps onto a CareLoop table. Subclasses set the class
    attributes and implement ``to_fhir``; writable types also ``create``/``update``/``delete``."""

    resource_type: ClassVar[str]
    model: ClassVar[type[Model]]
    profile: ClassVar[str] = ""
    interactions: ClassVar[frozenset[str]] = READ_ONLY
    # Role actions: every read needs all of read_actions, every write all of write_actions.
    read_actions: ClassVar[tuple[Action, ...]] = (Action.PATIENT_VIEW,)
    search_actions: ClassVar[tuple[Action, ...]] = ()
    write_actions: ClassVar[tuple[Action, ...]] = ()
    # Whether rows belong to one patient (the patient compartment): then they are scoped by
    # the patient, and a token in patient context reaches only its own patient's rows.
    patient_compartment: ClassVar[bool] = True
    search_params: ClassVar[dict[str, SearchParam]] = {}
    # _sort key → model ordering (the primary key is always added last for a stable order).
    sorts: ClassVar[dict[str, str]] = {}
    default_sort: ClassVar[tuple[str, ...]] = ("-pk",)
    # _include: reference search parameter → the type it points to. Patient targets come from
    # ``patient_id_of``; any other target is read from the element ``include_paths`` names for
    # the parameter (a dotted path, default the parameter's name) of the row's mapped elements.
    include_targets: ClassVar[dict[str, str]] = {}
    include_paths: ClassVar[dict[str, str]] = {}
    # Mapped elements → the model fields they come from (their fingerprint); elements not
    # listed here are kept as sent. ``generated`` elements are always rebuilt from the row.
    elements: ClassVar[dict[str, tuple[str, ...]]] = {}
    generated: ClassVar[frozenset[str]] = frozenset()
    keeps_extra: ClassVar[bool] = False

    # --- scope --------------------------------------------------------------------------

    def visible(self, actor: Actor) -> QuerySet[Any]:
        """Every row the actor may see (organisation, departments, not deleted)."""
        raise NotImplementedError

    def restrict_to_patient(self, qs: QuerySet[Any], patient_id: int | None) -> QuerySet[Any]:
        """Only the rows of one patient (a token in patient context); none if no patient."""
        if patient_id is None:
            return qs.none()
        return qs.filter(patient_id=patient_id)

    def patient_id_of(self, obj: Any) -> int | None:
        return getattr(obj, "patient_id", None)

    def parse_id(self, ident: str) -> Any:
        """The primary key an id names; None if it cannot name a row of this type."""
        return int(ident) if ident.isdigit() and len(ident) < 19 else None

    def id_of(self, obj: Any) -> str:
        return str(obj.pk)

    # --- versions -----------------------------------------------------------------------

    def version_of(self, obj: Any) -> int:
        return int(getattr(obj, "version", 1) or 1)

    def last_updated(self, obj: Any) -> dt.datetime:
        return getattr(obj, "updated_at", None) or obj.created_at  # type: ignore[no-any-return]

    def history(self, obj: Any) -> list[History]:
        """Every version, newest first. The default knows only the current one."""
        return [History(self.version_of(obj), self.last_updated(obj), "create", self.read(obj))]

    # --- conversion ---------------------------------------------------------------------

    def to_fhir(self, obj: Any) -> dict[str, Any]:
        """The mapped elements of a row (no id or meta)."""
        raise NotImplementedError

    def read(self, obj: Any) -> dict[str, Any]:
        """The full resource: mapped elements merged with what was kept from input."""
        mapped = self.to_fhir(obj)
        resource: dict[str, Any] = {"resourceType": self.resource_type, "id": self.id_of(obj)}
        meta: dict[str, Any] = {
            "versionId": str(self.version_of(obj)),
            "lastUpdated": instant(self.last_updated(obj)),
        }
        if self.profile:
            meta["profile"] = [self.profile]
        resource["meta"] = meta
        extra = getattr(obj, "fhir_extra", None) if self.keeps_extra else None
        kept: dict[str, Any] = (extra or {}).get("resource", {}) if isinstance(extra, dict) else {}
        prints: dict[str, str] = (extra or {}).get("prints", {}) if isinstance(extra, dict) else {}
        names = list(kept) + [n for n in mapped if n not in kept]
        for name in names:
            if name in SERVER_ELEMENTS:
                continue
            if name in self.generated or name not in kept:
                # An element the sender left out stays out while its fields are unchanged.
                absent = name in prints and prints[name] == self._print(obj, name)
                if name in mapped and not (absent and name not in self.generated):
                    resource[name] = mapped[name]
                continue
            if name in self.elements and prints.get(name) != self._print(obj, name):
                if name in mapped:
                    resource[name] = mapped[name]
                continue
            resource[name] = copy.deepcopy(kept[name])
        return resource

    def _print(self, obj: Any, element: str) -> str:
        values = [_plain(self.field_value(obj, f)) for f in self.elements.get(element, ())]
        return hashlib.sha256(json.dumps(values, default=str).encode()).hexdigest()[:16]

    def field_value(self, obj: Any, name: str) -> Any:
        """A modelled value an element's fingerprint is made of."""
        return getattr(obj, name, None)

    def keep(self, obj: Any, resource: dict[str, Any]) -> None:
        """Remember the incoming resource on the row (after the service stored it)."""
        if not self.keeps_extra:
            return
        kept = {k: v for k, v in resource.items() if k not in SERVER_ELEMENTS}
        for name in self.generated:
            kept.pop(name, None)
        prints = {name: self._print(obj, name) for name in self.elements}
        obj.fhir_extra = {"resource": kept, "prints": prints}
        type(obj)._default_manager.filter(pk=obj.pk).update(fhir_extra=obj.fhir_extra)

    # --- writes -------------------------------------------------------------------------

    def create(self, ctx: Context, resource: dict[str, Any]) -> tuple[Any, bool]:
        """Store a new resource through the services; (row, created). ``created`` is False
        when the service recognised the resource as one already stored."""
        raise FhirError.of(
            405, _("This resource type cannot be created here."), code="not-supported"
        )

    def update(self, ctx: Context, obj: Any, resource: dict[str, Any], expected: int) -> Any:
        raise FhirError.of(
            405, _("This resource type cannot be updated here."), code="not-supported"
        )

    def delete(self, ctx: Context, obj: Any, expected: int) -> None:
        raise FhirError.of(
            405, _("This resource type cannot be deleted here."), code="not-supported"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Model):
        return value.pk
    return value


def instant(moment: dt.datetime) -> str:
    """An aware time as a FHIR instant in UTC."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


_REGISTRY: dict[str, Mapper] = {}
_loaded = False


def register(cls: type[Mapper]) -> type[Mapper]:
    _REGISTRY[cls.resource_type] = cls()
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for name in RESOURCE_MODULES:
            importlib.import_module(name)
        _loaded = True


def mappers() -> dict[str, Mapper]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def mapper_for(resource_type: str) -> Mapper:
    """The mapper of a type; 404 OperationOutcome for a type this server does not serve."""
    _load()
    found = _REGISTRY.get(resource_type)
    if found is None:
        raise FhirError.of(
            404,
            _("Resource type “%(type)s” is not supported.") % {"type": resource_type[:64]},
            code="not-supported",
        )
    return found


def _validator() -> Callable[[dict[str, Any]], list[Issue]] | None:
    """careloop.fhir.validation.validate when that module is installed."""
    try:
        from careloop.fhir import validation
    except ImportError:
        return None
    return getattr(validation, "validate", None)


def check_incoming(resource: Any, resource_type: str, expression: str = "") -> dict[str, Any]:
    """An incoming resource of the given type, validated; 400/422 OperationOutcome if not."""
    where = expression or resource_type
    if not isinstance(resource, dict):
        raise FhirError.of(400, _("The body must be a JSON object."), code="structure")
    if resource.get("resourceType") != resource_type:
        raise FhirError.of(
            400,
            _("Expected resourceType “%(type)s”.") % {"type": resource_type},
            code="invalid",
            expression=f"{where}.resourceType" if expression else "resourceType",
        )
    validate = _validator()
    if validate is not None:
        issues = [i for i in validate(resource) if i.severity in ("error", "fatal")]
        if issues:
            raise FhirError(400, issues)
    return resource
