"""Checking one row of a patient list: values, identity consistency, duplicates, the match.

``Checker.check`` reads nothing but the database and writes nothing: the dry run and the real
run use the same checks, so what the dry run reports is what the real run does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils.translation import gettext as _

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Staff
from careloop.kit.crypto import blind_index
from careloop.kit.identifiers import (
    icd10_category,
    normalise_phone,
    normalise_resident_id,
    resident_id_birthdate,
    resident_id_problem,
    resident_id_sex,
)
from careloop.patients import models as pm
from careloop.patients import selectors as patient_selectors

_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SEX = {
    "男": "male", "男性": "male", "m": "male", "male": "male", "1": "male",
    "女": "female", "女性": "female", "f": "female", "female": "female", "2": "female",
    "未知": "unknown", "unknown": "unknown", "u": "unknown", "0": "unknown", "9": "unknown",
}  # fmt: skip
_PHONE_SPLIT = re.compile(r"[,，;；/、\s]+(?=\+?\d)")
# Fields of the patient a row may change on an existing patient.
UPDATABLE = ("name", "sex", "date_of_birth", "national_id", "record_number", "address")


def parse_date(text: str) -> date | None:
    """1960-03-05, 1960/3/5, 1960.3.5, 1960年3月5日, 19600305 (a time after a space ignored)."""
    value = text.strip().split(" ")[0] if re.match(r"^\d{4}\D", text.strip()) else text.strip()
    match = _DATE.match(value) or _COMPACT_DATE.match(value)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


@dataclass
class RowPlan:
    """What one row will do: create, update, unchanged or refused, and why."""

    row: int
    outcome: str = "refused"
    data: dict[str, Any] = field(default_factory=dict)  # patient fields, as create_patient takes
    phones: list[str] = field(default_factory=list)
    department_id: int | None = None
    icd10_code: str = ""
    diagnosis: str = ""
    patient_id: int | None = None  # the existing patient to update
    link: bool = False  # an ID-number match outside the actor's departments: link, not copy
    messages: list[dict[str, str]] = field(default_factory=list)  # errors: {field, reason}
    notes: list[dict[str, str]] = field(default_factory=list)  # warnings

    def error(self, name: str, reason: str) -> None:
        self.messages.append({"field": name, "reason": reason})

    def note(self, name: str, reason: str) -> None:
        self.notes.append({"field": name, "reason": reason})

    def as_result(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "outcome": self.outcome,
            "patient": self.patient_id,
            "name": self.data.get("name", ""),
            "messages": self.messages + self.notes,
        }


class Checker:
    """Checks the rows of one file in order (remembering the keys seen for duplicates)."""

    def __init__(self, actor: Actor, default_department: Department | None = None) -> None:
        self.actor = actor
        self.org_id = actor.organisation_id or 0
        self.default_department = default_department
        self.seen: dict[tuple[str, str], int] = {}
        org = actor.user.organisation
        self.today = datetime.now(ZoneInfo(org.time_zone if org else "Asia/Shanghai")).date()
        self.departments: dict[str, Department] = {}
        for dept in Department.objects.filter(organisation_id=self.org_id):
            for key in (dept.code, dept.name, dept.name_en):
                if key:
                    self.departments.setdefault(key.strip().lower(), dept)
        self.visible = patient_selectors.visible_patients(actor)
        self.active = pm.Patient.objects.filter(
            organisation_id=self.org_id, merged_into__isnull=True
        )

    # --- values ----------------------------------------------------------------------------

    def check(self, row: int, values: dict[str, str]) -> RowPlan:
        plan = RowPlan(row=row)
        self._values(plan, values)
        if not plan.messages:
            self._duplicates_in_file(plan)
        if not plan.messages:
            self._match(plan)
        if plan.messages:
            plan.outcome = "refused"
        return plan

    def _values(self, plan: RowPlan, values: dict[str, str]) -> None:
        data = plan.data
        name = values.get("name", "").strip()
        if not name:
            plan.error("name", _("The name is missing."))
        elif len(name) > 100:
            plan.error("name", _("The name is longer than 100 characters."))
        data["name"] = name[:100]

        sex_text = values.get("sex", "").strip().lower()
        sex = _SEX.get(sex_text, "") if sex_text else ""
        if sex_text and not sex:
            plan.error(
                "sex", _("“%(value)s” is not a sex (男/女, M/F).") % {"value": sex_text[:20]}
            )

        dob: date | None = None
        dob_text = values.get("date_of_birth", "").strip()
        if dob_text:
            dob = parse_date(dob_text)
            if dob is None:
                plan.error(
                    "date_of_birth",
                    _("“%(value)s” is not a date (e.g. 1960-03-05, 1960/3/5, 1960年3月5日).")
                    % {"value": dob_text[:30]},
                )
            elif dob > self.today or dob.year < 1880:
                plan.error("date_of_birth", _("The date of birth is not plausible."))
                dob = None

        nid = normalise_resident_id(values.get("national_id", ""))
        if nid:
            problem = resident_id_problem(nid)
            if problem == "format":
                plan.error(
                    "national_id",
                    _("The ID number must be 18 characters (17 digits and a digit or X)."),
                )
            elif problem == "checksum":
                plan.error("national_id", _("The ID number's check character is wrong."))
            elif problem == "birthdate":
                plan.error("national_id", _("The ID number holds an impossible birth date."))
            else:
                id_dob, id_sex = resident_id_birthdate(nid), resident_id_sex(nid)
                if dob is not None and dob != id_dob:
                    plan.error(
                        "date_of_birth",
                        _("The date of birth differs from the one in the ID number (%(date)s).")
                        % {"date": id_dob.isoformat()},
                    )
                if sex in ("male", "female") and sex != id_sex:
                    plan.error("sex", _("The sex differs from the one the ID number gives."))
                dob = dob or id_dob
                sex = sex or id_sex
            data["national_id"] = nid
        if (
            dob is None
            and not dob_text
            and "date_of_birth" not in {m["field"] for m in plan.messages}
        ):
            plan.error(
                "date_of_birth", _("The date of birth is missing (and no ID number gives it).")
            )
        if dob is not None:
            data["date_of_birth"] = dob.isoformat()
        data["sex"] = sex or "unknown"

        record = values.get("record_number", "").strip()
        if len(record) > 40:
            plan.error("record_number", _("The record number is longer than 40 characters."))
        elif record:
            data["record_number"] = record

        phone_text = values.get("phone", "").strip()
        if not phone_text:
            plan.error("phone", _("The phone number is missing."))
        for raw in _PHONE_SPLIT.split(phone_text) if phone_text else []:
            number = normalise_phone(raw)
            if number is None:
                plan.error(
                    "phone",
                    _("“%(value)s” is not a mobile (11 digits) or landline number.")
                    % {"value": raw[:30]},
                )
            elif number not in plan.phones:
                plan.phones.append(number)
        data["phones"] = plan.phones

        address = values.get("address", "").strip()
        if address:
            data["address"] = address[:500]

        self._department(plan, values.get("department", "").strip())

        code = values.get("icd10_code", "").strip().upper()
        plan.diagnosis = values.get("diagnosis", "").strip()[:200]
        if code:
            if icd10_category(code) is None:
                plan.error(
                    "icd10_code", _("“%(value)s” is not an ICD-10 code.") % {"value": code[:20]}
                )
            plan.icd10_code = code
        elif plan.diagnosis:
            plan.note("icd10_code", _("The diagnosis has no ICD-10 code; it is not recorded."))

        doctor = values.get("doctor", "").strip()
        if (
            doctor
            and not Staff.objects.filter(
                Q(display_name=doctor) | Q(username=doctor), organisation_id=self.org_id
            ).exists()
        ):
            plan.note(
                "doctor", _("No staff member is called “%(value)s”.") % {"value": doctor[:40]}
            )

    def _department(self, plan: RowPlan, text: str) -> None:
        dept = self.departments.get(text.lower()) if text else self.default_department
        if text and dept is None:
            plan.error(
                "department", _("There is no department “%(value)s”.") % {"value": text[:40]}
            )
            return
        if dept is None:
            return
        if not self.actor.is_org_wide and dept.pk not in self.actor.department_ids:
            plan.error(
                "department", _("%(value)s is not one of your departments.") % {"value": dept.name}
            )
            return
        plan.department_id = dept.pk

    # --- duplicates and the match ------------------------------------------------------------

    def _keys(self, plan: RowPlan) -> list[tuple[str, str]]:
        keys = []
        if plan.data.get("national_id"):
            keys.append(("national_id", plan.data["national_id"]))
        if plan.data.get("record_number"):
            keys.append(("record_number", plan.data["record_number"]))
        keys += [("phone", f"{plan.data['name']}|{p}") for p in plan.phones]
        return keys

    def _duplicates_in_file(self, plan: RowPlan) -> None:
        labels = {
            "national_id": _("Same ID number as row %(row)d."),
            "record_number": _("Same record number as row %(row)d."),
            "phone": _("Same name and phone as row %(row)d."),
        }
        for kind, value in self._keys(plan):
            first = self.seen.get((kind, value))
            if first is not None:
                plan.error(kind, labels[kind] % {"row": first})
                return
        for key in self._keys(plan):
            self.seen[key] = plan.row

    def _match(self, plan: RowPlan) -> None:
        found: dict[int, list[str]] = {}
        data = plan.data
        by_key = Q(pk__in=[])
        nid_index = (
            blind_index("national_id", data["national_id"]) if data.get("national_id") else ""
        )
        if nid_index:
            by_key |= Q(national_id_index=nid_index)
        if data.get("record_number"):
            by_key |= Q(record_number=data["record_number"])
        if nid_index or data.get("record_number"):
            keyed = self.active.filter(by_key).values_list(
                "pk", "national_id_index", "record_number"
            )
            for pk, index, record in keyed:
                if nid_index and index == nid_index:
                    found.setdefault(pk, []).append("national_id")
                if data.get("record_number") and record == data["record_number"]:
                    found.setdefault(pk, []).append("record_number")
        indexes = [blind_index("phone", p) for p in plan.phones]
        if indexes:
            same_phone = (
                self.active.filter(phones__number_index__in=indexes)
                .values_list("pk", "name")
                .distinct()
            )
            for pk, name in same_phone:
                if name == data["name"]:
                    found.setdefault(pk, []).append("phone")
                else:
                    plan.note(
                        "phone",
                        _("Patient #%(id)d (another name) has this phone too.") % {"id": pk},
                    )
        if len(found) > 1:
            plan.error(
                "",
                _("The row matches several registered patients: %(ids)s.")
                % {"ids": ", ".join(f"#{pk}" for pk in sorted(found))},
            )
            return
        if not found:
            plan.outcome = "create"
            return
        pk, how = next(iter(found.items()))
        if not self.visible.filter(pk=pk).exists():
            if "national_id" in how:
                plan.link, plan.patient_id, plan.outcome = True, pk, "update"
                plan.note("", _("Registered in another department; the patient joins yours."))
                return
            plan.error("", _("A matching patient is registered in a department outside yours."))
            return
        plan.patient_id = pk
        patient = self.active.prefetch_related("phones").get(pk=pk)
        plan.outcome = (
            "update"
            if self.changes(plan, patient) or self._new_condition(plan, pk)
            else "unchanged"
        )

    def _new_condition(self, plan: RowPlan, patient_id: int) -> bool:
        if not plan.icd10_code:
            return False
        return not pm.Condition.objects.filter(
            patient_id=patient_id, icd10_code=plan.icd10_code, deleted_at__isnull=True
        ).exists()

    def changes(self, plan: RowPlan, patient: pm.Patient) -> dict[str, Any]:
        """The fields a row changes on an existing patient (empty cells change nothing)."""
        out: dict[str, Any] = {}
        for name in UPDATABLE:
            value = plan.data.get(name)
            if value in (None, "") or (name == "sex" and value == "unknown"):
                continue
            current = getattr(patient, name)
            if isinstance(current, date):
                current = current.isoformat()
            if str(current or "") != str(value):
                out[name] = value
        numbers = [p.number for p in patient.phones.all()]
        extra = [p for p in plan.phones if p not in numbers]
        if extra:
            out["phones"] = numbers + extra
        return out
