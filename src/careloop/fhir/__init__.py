"""FHIR R4 facade over CareLoop's own services and tables (R15)."""
