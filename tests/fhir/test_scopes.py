"""SMART v2 scope grammar: what parses, what is refused (naming the scope), what each grants."""

from __future__ import annotations

import pytest

from careloop.fhir.scopes import Grant, ScopeError, Scopes


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "grants"),
        [
            ("patient/Observation.rs", [Grant("patient", "Observation", "rs")]),
            ("user/*.cruds", [Grant("user", "*", "cruds")]),
            ("system/*.rs", [Grant("system", "*", "rs")]),
            ("user/Patient.r", [Grant("user", "Patient", "r")]),
            ("user/Condition.cud", [Grant("user", "Condition", "cud")]),
            (
                "patient/Observation.rs  user/Patient.r\tsystem/Task.u",
                [
                    Grant("patient", "Observation", "rs"),
                    Grant("user", "Patient", "r"),
                    Grant("system", "Task", "u"),
                ],
            ),
            # SMART v1 spellings.
            ("user/Observation.read", [Grant("user", "Observation", "rs")]),
            ("patient/*.write", [Grant("patient", "*", "cud")]),
            ("system/*.*", [Grant("system", "*", "cruds")]),
            # Launch and identity scopes are allowed alongside and grant no data.
            ("openid fhirUser launch/patient user/Patient.rs", [Grant("user", "Patient", "rs")]),
        ],
    )
    def test_valid_scopes(self, text: str, grants: list[Grant]) -> None:
        assert list(Scopes.parse(text).grants) == grants

    @pytest.mark.parametrize(
        ("text", "named", "words"),
        [
            ("user/Observation.sr", "user/Observation.sr", "in that order"),
            ("user/Observation.rr", "user/Observation.rr", "in that order"),
            ("user/Observation.rx", "user/Observation.rx", "cruds"),
            ("user/Observation.r*", "user/Observation.r*", "cruds"),
            ("doctor/Observation.rs", "doctor/Observation.rs", "expected"),
            ("user/observation.rs", "user/observation.rs", "expected"),
            ("user/Observation", "user/Observation", "expected"),
            ("user/Observation.", "user/Observation.", "expected"),
            ("Observation.rs", "Observation.rs", "expected"),
            ("user/Observation.RS", "user/Observation.RS", "expected"),
            ("user/Obs-ervation.rs", "user/Obs-ervation.rs", "expected"),
            ("user/Observation.rs?category=vital-signs", "?category=vital-signs", "query"),
            ("patient/*.rs?x=1", "patient/*.rs?x=1", "query"),
            # The first bad one is named, good ones before it do not hide it.
            ("user/Patient.r user/Bad.q", "user/Bad.q", "cruds"),
        ],
    )
    def test_malformed_scopes_are_refused_by_name(self, text: str, named: str, words: str) -> None:
        with pytest.raises(ScopeError) as caught:
            Scopes.parse(text)
        assert named in str(caught.value)
        assert words in str(caught.value)

    @pytest.mark.parametrize("text", ["", "   ", "openid fhirUser", "launch/patient"])
    def test_no_resource_scope_is_an_error(self, text: str) -> None:
        with pytest.raises(ScopeError, match="no resource scope"):
            Scopes.parse(text)

    def test_round_trip_as_text(self) -> None:
        text = "patient/Observation.rs user/*.cruds system/Task.u"
        assert str(Scopes.parse(text)) == text
        assert str(Scopes.parse("user/Observation.read")) == "user/Observation.rs"
        assert str(Scopes.full()) == "*"


class TestWhatScopesAllow:
    def test_interactions_and_types(self) -> None:
        scopes = Scopes.parse("user/Observation.rs user/Patient.r")
        assert scopes.allows("Observation", "r")
        assert scopes.allows("Observation", "s")
        assert not scopes.allows("Observation", "c")
        assert not scopes.allows("Observation", "u")
        assert not scopes.allows("Observation", "d")
        assert scopes.allows("Patient", "r")
        assert not scopes.allows("Patient", "s")
        assert not scopes.allows("Condition", "r")

    def test_wildcard_type(self) -> None:
        scopes = Scopes.parse("system/*.rs")
        assert all(scopes.allows(t, "r") for t in ("Patient", "Observation", "AuditEvent"))
        assert not scopes.allows("Patient", "c")

    def test_an_operation_over_every_type_needs_a_wildcard_scope(self) -> None:
        assert Scopes.parse("user/*.r").allows("*", "r")
        assert not Scopes.parse("user/Patient.r user/Observation.r").allows("*", "r")

    def test_full_allows_everything_and_is_never_patient_only(self) -> None:
        full = Scopes.full()
        assert all(full.allows("Observation", i) for i in "cruds")
        assert not full.patient_only("Observation", "r")

    def test_empty_scopes_allow_nothing(self) -> None:
        assert not Scopes().allows("Patient", "r")

    @pytest.mark.parametrize("interaction", ["", "rs", "x", "R"])
    def test_unknown_interaction_is_a_programming_error(self, interaction: str) -> None:
        with pytest.raises(ValueError, match="unknown interaction"):
            Scopes.parse("user/*.cruds").allows("Patient", interaction)

    def test_patient_only_when_only_patient_grants_cover(self) -> None:
        scopes = Scopes.parse("patient/Observation.rs user/Patient.r")
        assert scopes.patient_only("Observation", "r")
        assert not scopes.patient_only("Patient", "r")  # a user grant reaches further
        assert not scopes.patient_only("Condition", "r")  # not allowed at all
        both = Scopes.parse("patient/*.rs user/Observation.s")
        assert not both.patient_only("Observation", "s")
        assert both.patient_only("Observation", "r")

    def test_system_context_is_not_patient_bound(self) -> None:
        assert not Scopes.parse("system/*.rs").patient_only("Patient", "r")
