"""SMART App Launch v2 scopes: what a token may do, never more than its user's own rights.

A scope reads ``<context>/<type>.<permissions>``: context ``patient`` (the one patient the token
is bound to), ``user`` (whatever the user may see) or ``system`` (a back-end system acting as
the user it was issued to); type a resource type or ``*``; permissions a subset of ``cruds`` in
that order (create, read, update, delete, search). The v1 forms ``.read``, ``.write`` and ``.*``
are accepted as ``rs``, ``cud`` and ``cruds``. Query parameters on a scope (``?category=...``)
narrow it in the specification; they are refused here rather than silently widened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
INTERACTIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)$")
# Launch and identity scopes a client may ask for alongside resource scopes; they grant no data.
_NON_DATA = {"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access"}


class ScopeError(ValueError):
    """A scope string that is not SMART v2 (or v1) syntax; the message names the scope."""


@dataclass(frozen=True)
class Grant:
    context: str
    resource_type: str  # "*" for every type
    permissions: str  # subset of "cruds", in that order

    def covers(self, resource_type: str, interaction: str) -> bool:
        return (self.resource_type in ("*", resource_type)) and interaction in self.permissions

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self.permissions}"


def _permissions(text: str, scope: str) -> str:
    if text in _V1:
        return _V1[text]
    if not text or any(c not in INTERACTIONS for c in text):
        raise ScopeError(f"'{scope}': permissions must be letters of 'cruds' in that order")
    ordered = "".join(c for c in INTERACTIONS if c in text)
    if ordered != text:
        raise ScopeError(f"'{scope}': permissions must be letters of 'cruds' in that order")
    return text


@dataclass(frozen=True)
class Scopes:
    """The grants of one token. ``unrestricted`` is a session or a token issued without scopes:
    the user's role alone decides."""

    grants: tuple[Grant, ...] = ()
    unrestricted: bool = False

    @classmethod
    def full(cls) -> Scopes:
        return cls((), True)

    @classmethod
    def parse(cls, text: str) -> Scopes:
        """Parse a space-separated scope list; raise ScopeError naming the first bad scope."""
        grants: list[Grant] = []
        for scope in text.split():
            if scope in _NON_DATA:
                continue
            if "?" in scope:
                raise ScopeError(f"'{scope}': scopes with query parameters are not supported")
            match = _SCOPE.match(scope)
            if match is None:
                raise ScopeError(
                    f"'{scope}': expected <patient|user|system>/<ResourceType|*>.<cruds>"
                )
            context, resource_type, perms = match.groups()
            grants.append(Grant(context, resource_type, _permissions(perms, scope)))
        if not grants:
            raise ScopeError("no resource scope given (for example 'user/Observation.rs')")
        return cls(tuple(grants))

    def allows(self, resource_type: str, interaction: str) -> bool:
        """Whether an interaction (one letter of 'cruds') on a type is within these scopes."""
        if interaction not in INTERACTIONS or len(interaction) != 1:
            raise ValueError(f"unknown interaction {interaction!r}")
        return self.unrestricted or any(g.covers(resource_type, interaction) for g in self.grants)

    def patient_only(self, resource_type: str, interaction: str) -> bool:
        """Whether the interaction is allowed only in patient context: then it reaches just the
        one patient the token is bound to (``ApiToken.patient``), and nothing without one."""
        if self.unrestricted:
            return False
        matching = [g for g in self.grants if g.covers(resource_type, interaction)]
        return bool(matching) and all(g.context == "patient" for g in matching)

    def __str__(self) -> str:
        return " ".join(str(g) for g in self.grants) if not self.unrestricted else "*"
