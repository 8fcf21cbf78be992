"""Apply HL7 v2 messages to CareLoop through the same services staff use, and log each one.

ADT A01/A04/A08/A03 register or update the patient (and A01/A03 open and close the stay, so a
discharge fires the post-discharge enrolment rules); A40 merges; ORU^R01 numeric results become
readings through the observations ingest (source "his"), which evaluates the alert rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from careloop.accounts import services as accounts
from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Organisation
from careloop.audit import services as audit
from careloop.hl7v2 import ack
from careloop.hl7v2 import models as hm
from careloop.hl7v2.parser import Message, ParseError, Segment, parse
from careloop.kit.clock import utc_now
from careloop.kit.crypto import blind_index
from careloop.kit.errors import CareLoopError, ValidationFailed
from careloop.kit.identifiers import normalise_phone, normalise_resident_id
from careloop.observations import domain as obs_domain
from careloop.observations import services as obs_services
from careloop.patients import models as pm
from careloop.patients import services as patient_services

MAX_MESSAGE_BYTES = 1_000_000
SUPPORTED = {"ADT^A01", "ADT^A04", "ADT^A08", "ADT^A03", "ADT^A40", "ORU^R01"}
# Identifier type codes (HL7 table 0203) read as the hospital record number, best first.
RECORD_TYPES = ("MR", "PI", "PT", "AN", "PN", "")
NATIONAL_TYPES = ("NNCHN", "NI", "CZ", "NNCN")
VISIT_KINDS = {"I": "inpatient", "O": "outpatient", "E": "emergency", "R": "outpatient"}


class Refused(Exception):
    """The message cannot be accepted at all (AR)."""


class AppError(Exception):
    """The message is understood but cannot be applied (AE)."""


@dataclass
class Outcome:
    code: str  # AA | AE | AR
    reason: str = ""
    patient: pm.Patient | None = None
    notes: list[str] = field(default_factory=list)


def organisation_for(code: str | None) -> Organisation:
    """The organisation a listener serves: the one named, or the only one there is."""
    if code:
        org = Organisation.objects.filter(code=code).first()
        if org is None:
            raise ValueError(f"no organisation with code {code!r}")
        return org
    orgs = list(Organisation.objects.order_by("pk")[:2])
    if len(orgs) != 1:
        raise ValueError("several organisations exist: name one with --organisation")
    return orgs[0]


def interface_actor(org: Organisation) -> Actor:
    """The HIS interface acts as a service account of the organisation that cannot sign in.

    It holds the department-head role in every department so it may register, update and merge
    patients and write clinical records, exactly the checks a member of staff goes through.
    """
    username = f"hl7.{org.code}"
    staff = accounts.service_account(org, username, "HL7 v2 interface")
    return Actor(user=staff, source="hl7v2", channel="hl7v2")


# --- reading fields ----------------------------------------------------------------------------


def hl7_time(raw: str, zone: ZoneInfo) -> datetime | None:
    """YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ] as an aware instant (local to `zone` if no offset)."""
    raw = raw.strip()
    if not raw:
        return None
    offset = None
    for sign in ("+", "-"):
        if sign in raw[4:]:
            at = raw.rindex(sign)
            tz = raw[at + 1 :]
            raw = raw[:at]
            if len(tz) == 4 and tz.isdigit():
                delta = timedelta(hours=int(tz[:2]), minutes=int(tz[2:]))
                offset = timezone(delta if sign == "+" else -delta)
            break
    raw = raw.split(".")[0]
    if not raw.isdigit() or len(raw) < 4:
        return None
    padded = (raw + "0101000000"[len(raw) - 4 :])[:14] if len(raw) < 14 else raw[:14]
    try:
        return datetime(
            int(padded[:4]), int(padded[4:6]), int(padded[6:8]), int(padded[8:10]),
            int(padded[10:12]), int(padded[12:14]), tzinfo=offset or zone,
        )  # fmt: skip
    except ValueError:
        return None


def hl7_date(raw: str) -> date | None:
    raw = raw.strip()[:8]
    if len(raw) < 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        return None


def identifiers(pid: Segment) -> list[tuple[str, str]]:
    """(type code, value) of each PID-3 repetition."""
    found = []
    for rep in range(len(pid.reps(3))):
        value = pid.component(3, 1, rep).strip()
        if value:
            found.append((pid.component(3, 5, rep).strip().upper(), value))
    return found


def record_number_of(ids: list[tuple[str, str]]) -> str:
    for wanted in RECORD_TYPES:
        for kind, value in ids:
            if kind == wanted or (wanted == "" and kind not in NATIONAL_TYPES + ("SS",)):
                return value[:40]
    return ""


def national_id_of(ids: list[tuple[str, str]], pid: Segment) -> str:
    for kind, value in ids:
        if kind in NATIONAL_TYPES:
            return normalise_resident_id(value)
    return ""


def person_name(pid: Segment) -> str:
    """PID-5: the legal name (type L) when given, else the first; Chinese names unspaced."""
    reps = pid.reps(5)
    pick = 0
    for i in range(len(reps)):
        if pid.component(5, 7, i) == "L":
            pick = i
            break
    family = pid.component(5, 1, pick, sub=1).strip()
    given = pid.component(5, 2, pick).strip()
    middle = pid.component(5, 3, pick).strip()
    if any("\u4e00" <= ch <= "\u9fff" for ch in family + given):
        return (family + given)[:100]
    return " ".join(p for p in (given, middle, family) if p)[:100]


def patient_data(pid: Segment, zone: ZoneInfo) -> dict[str, Any]:
    ids = identifiers(pid)
    data: dict[str, Any] = {}
    if name := person_name(pid):
        data["name"] = name
    if born := hl7_date(pid.component(7)):
        data["date_of_birth"] = born.isoformat()
    sex = {"M": "male", "F": "female"}.get(pid.component(8).strip().upper())
    if sex:
        data["sex"] = sex
    if record_number := record_number_of(ids):
        data["record_number"] = record_number
    if national := national_id_of(ids, pid):
        data["national_id"] = national
    phones: list[str] = []
    for n in (13, 14):
        for rep in range(len(pid.reps(n))):
            candidates = [
                pid.component(n, 1, rep),
                pid.component(n, 12, rep),
                pid.component(n, 6, rep) + pid.component(n, 7, rep),
            ]
            for raw in candidates:
                phone = normalise_phone(raw) if raw else None
                if phone and phone not in phones:
                    phones.append(phone)
                    break
    if phones:
        data["phones"] = phones[:3]
    address = [pid.component(11, c) for c in (1, 2, 3, 4, 5, 6)]
    if any(address):
        data["address"] = ", ".join(a for a in address if a)[:300]
    died = hl7_date(pid.component(29))
    if died and pid.component(30).strip().upper() == "Y":
        data["deceased_on"] = died.isoformat()
    return data


# --- finding patients --------------------------------------------------------------------------


def find_patient(org: Organisation, ids: list[tuple[str, str]]) -> pm.Patient | None:
    """The live patient named by PID-3 (or MRG-1) identifiers in this organisation."""
    base = pm.Patient.objects.filter(organisation=org)
    number = record_number_of(ids)
    found = None
    if number:
        found = base.filter(record_number=number).order_by("merged_into_id", "pk").first()
    if found is None:
        for kind, value in ids:
            if kind in NATIONAL_TYPES:
                index = blind_index("national_id", normalise_resident_id(value))
                found = base.filter(national_id_index=index).order_by("merged_into_id").first()
                if found:
                    break
    while found is not None and found.merged_into_id is not None:
        found = pm.Patient.objects.get(pk=found.merged_into_id)
    return found


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationFailed):
        parts = [f"{k}: {'; '.join(str(x) for x in v)}" for k, v in exc.details.items()]
        return "; ".join(parts) or str(exc.message)
    if isinstance(exc, CareLoopError):
        return str(getattr(exc, "message", exc))
    return str(exc)


def _department(org: Organisation, pv1: Segment | None) -> Department | None:
    depts = Department.objects.filter(organisation=org)
    if pv1 is not None:
        for raw in (pv1.component(10), pv1.component(3, 1), pv1.component(39)):
            key = raw.strip()
            if not key:
                continue
            for d in depts:
                if key.lower() in (d.code.lower(), d.name.lower(), (d.name_en or "").lower()):
                    return d
    return depts.order_by("pk").first()


def upsert_patient(
    actor: Actor, org: Organisation, pid: Segment, pv1: Segment | None
) -> tuple[pm.Patient, str]:
    zone = ZoneInfo(org.time_zone)
    ids = identifiers(pid)
    if not ids:
        raise AppError(_("PID-3 holds no patient identifier"))
    data = patient_data(pid, zone)
    existing = find_patient(org, ids)
    dept = _department(org, pv1)
    try:
        if existing is None:
            if "date_of_birth" not in data:
                raise AppError(_("PID-7 (date of birth) is missing or not a date"))
            if "name" not in data:
                raise AppError(_("PID-5 (patient name) is empty"))
            created = patient_services.create_patient_from_feed(
                actor, data, department_id=dept.pk if dept else None
            )
            return created, "created"
        updated = patient_services.update_patient_from_feed(actor, existing.pk, data)
        return updated, "updated"
    except (ValidationFailed, CareLoopError) as exc:
        raise AppError(_explain(exc)) from exc


# --- handlers ----------------------------------------------------------------------------------


def _today(org: Organisation) -> date:
    return utc_now().astimezone(ZoneInfo(org.time_zone)).date()


def _visit_date(org: Organisation, *raws: str) -> date:
    """The first of the given times that is a date not in the future; else today."""
    today = _today(org)
    for raw in raws:
        moment = hl7_time(raw, ZoneInfo(org.time_zone))
        if moment is not None:
            day = moment.astimezone(ZoneInfo(org.time_zone)).date()
            if day <= today:
                return day
    return today


def _adt(actor: Actor, org: Organisation, msg: Message) -> Outcome:
    pid = msg.first("PID")
    if pid is None:
        raise Refused(_("the message has no PID segment"))
    pv1 = msg.first("PV1")
    patient, how = upsert_patient(actor, org, pid, pv1)
    notes = [f"patient {how}"]
    evn = msg.first("EVN")
    event_time = (evn.component(2) if evn else "") or msg.msh.component(7)
    if msg.trigger == "A01" or (msg.trigger == "A04" and pv1 is not None):
        _open_visit(actor, org, patient, msg.trigger, pv1, event_time)
        notes.append("visit recorded")
    elif msg.trigger == "A03":
        _close_visit(actor, org, patient, pv1, event_time)
        notes.append("discharge recorded")
    return Outcome("AA", "", patient, notes)


def _visit_kind(trigger: str, pv1: Segment | None) -> str:
    code = pv1.component(2).strip().upper() if pv1 is not None else ""
    return VISIT_KINDS.get(code, "inpatient" if trigger in ("A01", "A03") else "outpatient")


def _visit_fields(pv1: Segment | None) -> dict[str, Any]:
    if pv1 is None:
        return {}
    doctor = " ".join(p for p in (pv1.component(7, 3), pv1.component(7, 2, sub=1)) if p)
    return {"attending": doctor[:100]}


def _open_visit(
    actor: Actor,
    org: Organisation,
    patient: pm.Patient,
    trigger: str,
    pv1: Segment | None,
    event_time: str,
) -> pm.Encounter:
    admitted = _visit_date(org, pv1.component(44) if pv1 else "", event_time)
    kind = _visit_kind(trigger, pv1)
    same = pm.Encounter.objects.filter(
        patient=patient, kind=kind, admitted_on=admitted, deleted_at__isnull=True
    ).first()
    if same is not None:
        return same
    dept = _department(org, pv1)
    data = {
        "kind": kind,
        "department": dept.pk if dept else None,
        "admitted_on": admitted.isoformat(),
        **_visit_fields(pv1),
    }
    try:
        row: pm.Encounter = patient_services.add_record(actor, patient.pk, "visits", data)
    except (ValidationFailed, CareLoopError) as exc:
        raise AppError(_explain(exc)) from exc
    return row


def _close_visit(
    actor: Actor, org: Organisation, patient: pm.Patient, pv1: Segment | None, event_time: str
) -> None:
    discharged = _visit_date(org, pv1.component(45) if pv1 else "", event_time)
    kind = _visit_kind("A03", pv1)
    open_visit = (
        pm.Encounter.objects.filter(
            patient=patient, discharged_on__isnull=True, deleted_at__isnull=True, kind=kind
        )
        .order_by("-admitted_on", "-pk")
        .first()
    )
    try:
        if open_visit is None:
            dept = _department(org, pv1)
            admitted = _visit_date(org, pv1.component(44) if pv1 else "", event_time)
            patient_services.add_record(
                actor,
                patient.pk,
                "visits",
                {
                    "kind": kind,
                    "department": dept.pk if dept else None,
                    "admitted_on": min(admitted, discharged).isoformat(),
                    "discharged_on": discharged.isoformat(),
                    **_visit_fields(pv1),
                },
            )
        else:
            patient_services.update_record(
                actor,
                patient.pk,
                "visits",
                open_visit.pk,
                {"discharged_on": max(discharged, open_visit.admitted_on).isoformat()},
                open_visit.version,
            )
    except (ValidationFailed, CareLoopError) as exc:
        raise AppError(_explain(exc)) from exc


def _merge(actor: Actor, org: Organisation, msg: Message) -> Outcome:
    pid, mrg = msg.first("PID"), msg.first("MRG")
    if pid is None or mrg is None:
        raise Refused(_("an A40 needs a PID and an MRG segment"))
    prior_ids = [
        (mrg.component(1, 5, rep).strip().upper(), mrg.component(1, 1, rep).strip())
        for rep in range(len(mrg.reps(1)))
        if mrg.component(1, 1, rep).strip()
    ]
    if not prior_ids:
        raise AppError(_("MRG-1 holds no prior patient identifier"))
    drop = find_patient(org, prior_ids)
    if drop is None:
        raise AppError(
            _("the patient to merge (MRG-1 %(id)s) is unknown") % {"id": prior_ids[0][1]}
        )
    keep = find_patient(org, identifiers(pid))
    if keep is None:
        raise AppError(
            _("the surviving patient (PID-3 %(id)s) is unknown")
            % {"id": (identifiers(pid) or [("", "")])[0][1]}
        )
    if keep.pk == drop.pk:
        return Outcome("AA", _("already merged"), keep, ["already merged"])
    try:
        kept = patient_services.merge_patients(actor, keep.pk, drop.pk, drop.version)
    except (ValidationFailed, CareLoopError) as exc:
        raise AppError(_explain(exc)) from exc
    return Outcome("AA", "", kept, [f"merged patient {drop.pk} into {kept.pk}"])


def _numeric(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


BP_PARTS = {obs_domain.SYSTOLIC_CODE: "systolic", obs_domain.DIASTOLIC_CODE: "diastolic"}


def _results(actor: Actor, org: Organisation, msg: Message) -> Outcome:
    pid = msg.first("PID")
    if pid is None:
        raise Refused(_("the message has no PID segment"))
    ids = identifiers(pid)
    patient = find_patient(org, ids)
    if patient is None:
        raise AppError(
            _("unknown patient: no patient with identifier %(id)s in this organisation")
            % {"id": ids[0][1] if ids else "?"}
        )
    zone = ZoneInfo(patient.time_zone)
    items: list[dict[str, Any]] = []
    skipped: list[str] = []
    obr_time = msg.msh.component(7)
    bp: dict[str, dict[str, Any]] = {}
    for seg in msg.segments:
        if seg.name == "OBR":
            obr_time = seg.component(7) or seg.component(22) or msg.msh.component(7)
            continue
        if seg.name != "OBX":
            continue
        code = seg.component(3, 1).strip()
        value_type = seg.component(2).strip().upper()
        status = seg.component(11).strip().upper()
        if status in ("D", "W", "X"):  # deleted, wrong patient, cannot be obtained
            skipped.append(f"{code} ({_('status')} {status})")
            continue
        if value_type not in ("NM", "SN", "ST", ""):
            skipped.append(f"{code} ({value_type})")
            continue
        raw_value = seg.component(5, 1)
        if value_type == "SN":
            raw_value = seg.component(5, 2)
        if value_type in ("ST", "") and not _numeric(raw_value):
            skipped.append(f"{code} ({value_type or 'ST'})")
            continue
        moment = hl7_time(seg.component(14) or obr_time, zone)
        when = moment.astimezone(UTC).isoformat() if moment else ""
        unit = seg.component(6, 1).strip()
        if code in BP_PARTS:
            bp.setdefault(when, {"code": "85354-9", "effective": when, "unit": unit or "mm[Hg]"})
            bp[when][BP_PARTS[code]] = raw_value
            continue
        try:
            obs_domain.resolve_kind(code)
        except obs_domain.Problem:
            skipped.append(code or "?")
            continue
        item: dict[str, Any] = {"code": code, "value": raw_value, "effective": when}
        if unit:
            item["unit"] = unit
        items.append(item)
    items.extend(v for v in bp.values())
    notes: list[str] = []
    if skipped:
        notes.append(
            _("not followed by CareLoop, not stored: %(codes)s")
            % {"codes": ", ".join(skipped[:20])}
        )
    if not items:
        return Outcome("AA", "; ".join(notes), patient, notes)
    report = obs_services.ingest(
        None,
        [{**item, "patient": patient.pk} for item in items],
        organisation_id=org.pk,
        source="his",
        origin="hl7v2",
    )
    notes.insert(0, f"{report.accepted} stored, {report.duplicates} already held")
    if report.problems:
        problems = "; ".join(f"{p.field}: {p.reason}" for p in report.problems[:10])
        raise AppError(_("results refused: %(problems)s") % {"problems": problems})
    return Outcome("AA", "; ".join(notes[1:]), patient, notes)


def apply(msg: Message, org: Organisation) -> Outcome:
    """Apply one parsed message; AR/AE as exceptions turned into outcomes."""
    kind = msg.type_code
    if kind not in SUPPORTED:
        return Outcome(
            "AR",
            _("unsupported message type %(type)s (supported: %(list)s)")
            % {"type": kind, "list": ", ".join(sorted(SUPPORTED))},
        )
    actor = interface_actor(org)
    try:
        with transaction.atomic():
            if msg.message_type == "ORU":
                return _results(actor, org, msg)
            if msg.trigger == "A40":
                return _merge(actor, org, msg)
            return _adt(actor, org, msg)
    except Refused as exc:
        return Outcome("AR", str(exc))
    except AppError as exc:
        return Outcome("AE", str(exc))


# --- the log -----------------------------------------------------------------------------------


def receive(
    raw: bytes, org: Organisation, *, channel: str = "mllp", peer: str = ""
) -> tuple[str, hm.Message]:
    """Log, apply and answer one message. The same control id from the same sender is applied
    once: a re-send is answered with the original acknowledgement. Answers are in English."""
    with translation.override("en"):
        return _receive(raw, org, channel, peer)


def _receive(raw: bytes, org: Organisation, channel: str, peer: str) -> tuple[str, hm.Message]:
    digest = hashlib.sha256(raw).hexdigest()
    now = utc_now()
    if len(raw) > MAX_MESSAGE_BYTES:
        text = _("the message is larger than %(n)d bytes") % {"n": MAX_MESSAGE_BYTES}
        answer = ack.build("AR", text)
        log = hm.Message.objects.create(
            organisation=org, received_at=now, raw=raw[:MAX_MESSAGE_BYTES], digest=digest,
            channel=channel, peer=peer, status=hm.Status.REJECTED, reason=text, ack=answer,
        )  # fmt: skip
        return answer, log
    try:
        msg = parse(raw)
    except ParseError as exc:
        text = _("invalid message: %(why)s") % {"why": str(exc)}
        answer = ack.build("AR", text)
        log = hm.Message.objects.create(
            organisation=org, received_at=now, raw=raw, digest=digest, channel=channel,
            peer=peer, status=hm.Status.REJECTED, reason=text, ack=answer,
        )  # fmt: skip
        return answer, log
    sender, control_id = msg.sending[:400], msg.control_id[:199]
    earlier = hm.Message.objects.filter(
        organisation=org, sender=sender, control_id=control_id
    ).first()
    if earlier is not None:
        return _repeat(earlier, msg, digest)
    try:
        with transaction.atomic():
            log = hm.Message.objects.create(
                organisation=org, received_at=now, raw=raw, digest=digest, sender=sender,
                control_id=control_id, message_type=msg.type_code[:40], channel=channel,
                peer=peer[:100], status=hm.Status.REJECTED,
            )  # fmt: skip
    except IntegrityError:
        # Another connection logged the same message a moment ago.
        earlier = hm.Message.objects.get(organisation=org, sender=sender, control_id=control_id)
        return _repeat(earlier, msg, digest)
    return _apply_logged(log, msg, org), log


def _repeat(earlier: hm.Message, msg: Message, digest: str) -> tuple[str, hm.Message]:
    if earlier.digest == digest and earlier.ack:
        return earlier.ack, earlier
    text = _("control id %(id)s was already used by this sender for a different message") % {
        "id": msg.control_id
    }
    return ack.build("AR", text, message=msg), earlier


def _apply_logged(log: hm.Message, msg: Message, org: Organisation) -> str:
    try:
        outcome = apply(msg, org)
    except Exception as exc:  # noqa: BLE001 - any failure is answered, logged and kept
        outcome = Outcome("AE", _("internal error: %(why)s") % {"why": type(exc).__name__})
    status = {"AA": hm.Status.APPLIED, "AE": hm.Status.ERROR, "AR": hm.Status.REJECTED}
    answer = ack.build(outcome.code, outcome.reason, message=msg)
    log.status = status[outcome.code]
    log.reason = outcome.reason if outcome.code != "AA" else "; ".join(outcome.notes)
    log.patient = outcome.patient
    log.ack = answer
    log.applied_at = utc_now() if outcome.code == "AA" else log.applied_at
    log.save(update_fields=["status", "reason", "patient", "ack", "applied_at"])
    return answer


def replay(log: hm.Message, actor: Actor | None = None) -> hm.Message:
    """Apply a logged message again (after fixing what made it fail)."""
    with translation.override("en"):
        return _replay(log, actor)


def _replay(log: hm.Message, actor: Actor | None) -> hm.Message:
    raw = bytes(log.raw)
    log.replay_count += 1
    log.save(update_fields=["replay_count"])
    try:
        msg = parse(raw)
    except ParseError as exc:
        log.reason = _("invalid message: %(why)s") % {"why": str(exc)}
        log.save(update_fields=["reason"])
        return log
    _apply_logged(log, msg, log.organisation)
    if actor is not None:
        audit.record(
            actor,
            "hl7v2.replay",
            patient_id=log.patient_id,
            obj=log,
            detail={"status": log.status},
        )
    return log


def load_file(data: bytes) -> list[bytes]:
    """The messages of a file: one or more, each starting with MSH (MLLP frames stripped)."""
    data = data.replace(b"\x0b", b"").replace(b"\x1c", b"")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        if line.strip():
            messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages if m]
