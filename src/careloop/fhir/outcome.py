"""OperationOutcome: how every FHIR error names the element and the reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue. ``expression`` holds FHIRPath locations such as
    ``Observation.valueQuantity.value``; ``code`` is from the IssueType value set
    (invalid, structure, required, value, not-found, conflict, forbidden, processing, ...)."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def as_fhir(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            item["expression"] = list(self.expression)
        return item


def operation_outcome(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


@dataclass
class FhirError(Exception):
    """Raised anywhere below the FHIR views; answered as an OperationOutcome with ``status``."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues) or f"HTTP {self.status}"

    @classmethod
    def of(
        cls, status: int, diagnostics: str, *, code: str = "invalid", expression: str = ""
    ) -> FhirError:
        return cls(status, [Issue(diagnostics, code, "error", (expression,) if expression else ())])
