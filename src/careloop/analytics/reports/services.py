"""Making, downloading and e-mailing the monthly department report.

E-mail goes through the organisation's own e-mail channel (the SMTP settings of its
``ChannelConfig``, as the on-call notifications do) with Django's SMTP backend and an
``EmailMessage`` carrying the PDF: a real SMTP conversation.

Delivery contract (as for staff notifications):
- One `ReportRun` per (department, month, recipient) of the monthly e-mail; the unique key
  means the report is never sent twice to one address, whoever queues it and how often.
- A claim is a short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN
  IMMEDIATE`` on SQLite) that moves due rows to ``sending`` with a lease; a crashed worker's
  rows come back when the lease ends.
- A refusal the server says is temporary (4xx, a connection that fails) is retried with
  backoff, at most ``MAX_ATTEMPTS`` tries; a permanent one (5xx, no e-mail channel) fails the
  row with the reason, shown on the schedules page.

`send_due(now)` is the worker's hook (at most hourly): on each active schedule's day (or later
in the month, when the worker was down that day) in the organisation's time zone it queues the
previous month's report for the recipients, then sends what is due. Every generation, download
and sending is on the audit trail.
"""

from __future__ import annotations

import logging
import random
import smtplib
import ssl
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department, Staff
from careloop.analytics import registry
from careloop.analytics.reports import forms, pdf, selectors
from careloop.analytics.reports import models as rm
from careloop.audit import services as audit
from careloop.careplans import domain as plan_domain
from careloop.channels import models as chm
from careloop.channels.port import ChannelError, PermanentError, PermanentReason, TransientError
from careloop.channels.smtp import classify, message_id
from careloop.channels.transport import flag
from careloop.kit.clock import span, utc_now
from careloop.kit.errors import NotFound, ValidationFailed

log = logging.getLogger("careloop.analytics.reports")

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=10)
# A monthly report is not urgent: 15 min, 30 min, 1 h … at most 6 h between tries.
BACKOFF_BASE = 900.0
BACKOFF_CAP = 6 * 3600.0
SYSTEM = "system:reports"
BATCH = 50
ROUNDS = 20  # at most this many batches per hook call; the rest waits for the next call
PENDING, SENDING, SENT, FAILED = (
    rm.ReportRun.Status.PENDING,
    rm.ReportRun.Status.SENDING,
    rm.ReportRun.Status.SENT,
    rm.ReportRun.Status.FAILED,
)
SCHEDULED, TEST = rm.ReportRun.Purpose.SCHEDULED, rm.ReportRun.Purpose.TEST


# --- generating and downloading -----------------------------------------------------------------


def generate(
    department: Department,
    month: date,
    *,
    language: str = "zh-hans",
    actor: Actor | None = None,
    purpose: str = "download",
    today: date | None = None,
    keys: Iterable[str] | None = None,
) -> bytes:
    """The department's report of `month` as PDF bytes; the generation is audited (by the
    actor, or by the system for the monthly e-mail and the command line)."""
    data = pdf.build(department, month, language=language, today=today, keys=keys)
    detail = {
        "department": department.pk,
        "month": f"{month:%Y-%m}",
        "language": language,
        "purpose": purpose,
        "bytes": len(data),
    }
    if actor is not None:
        audit.record(
            actor,
            "report.generate",
            object_type="accounts.department",
            object_id=department.pk,
            detail=detail,
        )
    else:
        audit.append(
            action="report.generate",
            organisation_id=department.organisation_id,
            actor_name=SYSTEM if purpose != "cli" else "system:cli",
            object_type="accounts.department",
            object_id=department.pk,
            detail=detail,
        )
    return data


def download(actor: Actor, department_id: int, month: date) -> tuple[str, bytes]:
    """(file name, PDF) of a department's monthly report for a head or an admin."""
    dept = selectors.department(actor, department_id)
    if not selectors.reportable(dept, month):
        raise NotFound()
    language = (getattr(actor.user, "language", "") or "zh-hans").lower()
    data = generate(dept, month, language=language, actor=actor, purpose="download")
    audit.record(
        actor,
        "report.download",
        object_type="accounts.department",
        object_id=dept.pk,
        detail={"month": f"{month:%Y-%m}", "bytes": len(data)},
    )
    return pdf.filename(dept, month), data


# --- the schedule ------------------------------------------------------------------------------


def schedule_form(actor: Actor, data: Any = None, *, initial: Any = None) -> forms.ScheduleForm:
    return forms.ScheduleForm(data, initial=initial, candidates=selectors.candidates(actor))


def save_schedule(actor: Actor, department_id: int, data: Any) -> rm.ReportSchedule:
    """Create or change a department's e-mail schedule (audited); raises ValidationFailed."""
    dept = selectors.department(actor, department_id)
    form = schedule_form(actor, data)
    if not form.is_valid():
        raise ValidationFailed(details={k: [str(e) for e in v] for k, v in form.errors.items()})
    values = form.cleaned_data
    now = utc_now()
    with transaction.atomic():
        schedule = rm.ReportSchedule.objects.select_for_update().filter(department=dept).first()
        created = schedule is None
        if schedule is None:
            schedule = rm.ReportSchedule(
                organisation_id=dept.organisation_id,
                department=dept,
                created_by=actor.user,
                created_at=now,
            )
        else:
            schedule.version += 1
        schedule.active = bool(values["active"])
        schedule.day = int(values["day"])
        schedule.language = values["language"]
        schedule.updated_by = actor.user
        schedule.updated_at = now
        schedule.save()
        extra = list(values["extra_recipients"])
        schedule.extra_recipients.set(extra)
        audit.record(
            actor,
            "report.schedule",
            obj=schedule,
            detail={
                "department": dept.pk,
                "created": created,
                "active": schedule.active,
                "day": schedule.day,
                "language": schedule.language,
                "extra_recipients": sorted(s.pk for s in extra),
            },
        )
    return schedule


# --- queueing ----------------------------------------------------------------------------------


def queue(
    department: Department,
    month: date,
    *,
    schedule: rm.ReportSchedule | None = None,
    people: Sequence[Staff] | None = None,
    requested_by: Staff | None = None,
    now: datetime | None = None,
) -> int:
    """Queue the monthly e-mail of `month` for the recipients (default: the schedule's);
    a recipient who already has a run for that month is left alone. Returns how many rows
    were added."""
    now = now or utc_now()
    schedule = schedule if schedule is not None else selectors.schedule_of(department)
    people = list(people) if people is not None else selectors.recipients(department, schedule)
    language = schedule.language if schedule is not None else "zh-hans"
    rows = [
        rm.ReportRun(
            organisation_id=department.organisation_id,
            department=department,
            schedule=schedule,
            month=month,
            purpose=SCHEDULED,
            recipient=person.email.strip(),
            staff=person,
            language=language,
            next_try_at=now,
            created_at=now,
            requested_by=requested_by,
        )
        for person in people
        if (person.email or "").strip()
    ]
    if not rows:
        return 0
    before = rm.ReportRun.objects.filter(department=department, month=month, purpose=SCHEDULED)
    count = before.count()
    rm.ReportRun.objects.bulk_create(rows, ignore_conflicts=True)
    added = before.count() - count
    if added:
        audit.append(
            action="report.queue",
            organisation_id=department.organisation_id,
            actor_id=requested_by.pk if requested_by else None,
            actor_name=requested_by.get_username() if requested_by else SYSTEM,
            object_type="accounts.department",
            object_id=department.pk,
            detail={"month": f"{month:%Y-%m}", "added": added},
        )
    return added


def due_month(schedule: rm.ReportSchedule, now: datetime) -> date | None:
    """The month whose report the schedule sends now, if any: from its day of the month (in
    the organisation's time zone) to the end of that month, the previous month's report,
    unless it went out already or the schedule was made after this month's sending day."""
    if not schedule.active:
        return None
    zone = selectors.zone_of(schedule.department)
    local = now.astimezone(zone).date()
    if local.day < schedule.day:
        return None
    month = registry.add_months(registry.month_of(local), -1)
    if schedule.last_sent_month is not None and schedule.last_sent_month >= month:
        return None
    sending_day = local.replace(day=schedule.day)
    if schedule.created_at.astimezone(zone).date() > sending_day:
        return None
    return month


def queue_due(now: datetime) -> int:
    """Queue every active schedule's report that is due now; returns the rows added."""
    added = 0
    schedules = rm.ReportSchedule.objects.filter(active=True).select_related(
        "department__organisation"
    )
    for schedule in schedules:
        month = due_month(schedule, now)
        if month is None:
            continue
        if rm.ReportRun.objects.filter(
            department_id=schedule.department_id, month=month, purpose=SCHEDULED
        ).exists():
            continue  # queued already (perhaps by another worker or `careloop report --send`)
        added += queue(schedule.department, month, schedule=schedule, now=now)
    return added


# --- sending -----------------------------------------------------------------------------------


def claim(now: datetime, limit: int, ids: Sequence[int] | None = None) -> list[int]:
    """Lease up to `limit` runs that are due (or those of `ids` that are pending)."""
    with transaction.atomic():
        qs = rm.ReportRun.objects.filter(
            Q(status=PENDING, next_try_at__lte=now) | Q(status=SENDING, next_try_at__lte=now)
        )
        if ids is not None:
            qs = rm.ReportRun.objects.filter(pk__in=ids, status=PENDING)
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True)
        found = list(qs.order_by("next_try_at", "id").values_list("id", flat=True)[:limit])
        if found:
            rm.ReportRun.objects.filter(id__in=found).update(
                status=SENDING, next_try_at=now + span(LEASE), attempts=F("attempts") + 1
            )
    return found


class _Backend(EmailBackend):
    """Django's SMTP backend over the organisation's e-mail channel settings (its own CA
    bundle, when one is given, is trusted for STARTTLS and implicit TLS)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        implicit = flag(config, "ssl")
        super().__init__(
            host=str(config.get("host") or ""),
            port=int(config.get("port") or (465 if implicit else 587)),
            username=str(config.get("username") or ""),
            password=str(config.get("password") or ""),
            use_tls=not implicit and flag(config, "starttls", True),
            use_ssl=implicit,
            timeout=float(config.get("timeout") or 10),
            fail_silently=False,
        )
        self.ca_file = str(config.get("ca_file") or "") or None

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass
class _Channel:
    backend: _Backend | None
    sender: str
    problem: ChannelError | None = None


def _channel(organisation_id: int) -> _Channel:
    cfg = chm.ChannelConfig.objects.filter(organisation_id=organisation_id, kind="email").first()
    if cfg is None or not cfg.enabled or cfg.provider != "smtp":
        return _Channel(
            None,
            "",
            PermanentError(
                "no e-mail (SMTP) channel is set up for the organisation",
                code="no_channel",
                reason=PermanentReason.CONFIGURATION,
            ),
        )
    config = cfg.config
    if not config.get("host") or not config.get("from_address"):
        return _Channel(
            None,
            "",
            PermanentError(
                "the e-mail channel lacks a host or a sender address",
                code="no_channel",
                reason=PermanentReason.CONFIGURATION,
            ),
        )
    return _Channel(_Backend(config), str(config["from_address"]))


def texts(department: Department, month: date, language: str) -> tuple[str, str]:
    """(subject, body) of the e-mail in the recipient's language; the PDF holds aggregate
    figures only, so the text names no patient either."""
    name = pdf.department_name(department, language)
    link = settings.PUBLIC_URL.rstrip("/") + reverse("reports:schedules")
    with translation.override(language or "zh-hans"):
        subject = gettext("CareLoop monthly report: %(department)s, %(month)s") % {
            "department": name,
            "month": pdf.month_label(month),
        }
        body = "\n\n".join(
            [
                gettext("The monthly report of %(department)s for %(month)s is attached as a PDF.")
                % {"department": name, "month": pdf.month_label(month)},
                gettext(
                    "It holds figures for the department as a whole and names no patient."
                    " The dashboards show the patients behind each figure."
                ),
                gettext("Who receives this report, and when: %(link)s") % {"link": link},
            ]
        )
    return subject, body


def _compose(run: rm.ReportRun, channel: _Channel, attachment: tuple[str, bytes]) -> EmailMessage:
    address = run.recipient.strip()
    if address.count("@") != 1 or any(c in address for c in "\r\n<>,; "):
        raise PermanentError(
            "smtp: recipient is not an e-mail address",
            code="bad_address",
            reason=PermanentReason.INVALID_ADDRESS,
        )
    subject, body = texts(run.department, run.month, run.language)
    key = (
        f"report:{run.department_id}:{run.month:%Y-%m}:{address.lower()}"
        if run.purpose == SCHEDULED
        else f"report-test:{run.pk}"
    )
    mail = EmailMessage(
        subject=" ".join(subject.split()),
        body=body,
        from_email=channel.sender,
        to=[address],
        headers={
            "Message-ID": message_id(key, channel.sender),
            "Auto-Submitted": "auto-generated",
            "Content-Language": run.language or "zh-hans",
        },
    )
    mail.encoding = "utf-8"
    mail.attach(attachment[0], attachment[1], "application/pdf")
    return mail


def _deliver(channel: _Channel, mail: EmailMessage) -> str | ChannelError:
    """Send one message on the channel's (kept open) connection: its Message-ID, or the error."""
    if channel.problem is not None or channel.backend is None:
        return channel.problem or TransientError("smtp: no connection")
    backend = channel.backend
    try:
        backend.open()  # kept open for the round: send_messages then leaves it open
        backend.send_messages([mail])
    except smtplib.SMTPRecipientsRefused as exc:
        code = next(iter(exc.recipients.values()), (550, b""))[0]
        _reset(backend)
        return classify(code, stage="recipient")
    except smtplib.SMTPAuthenticationError as exc:
        channel.problem = classify(exc.smtp_code, stage="login")
        return channel.problem
    except smtplib.SMTPSenderRefused as exc:
        _reset(backend)
        return classify(exc.smtp_code, stage="sender")
    except smtplib.SMTPNotSupportedError:
        channel.problem = PermanentError(
            "smtp: server lacks STARTTLS or AUTH",
            code="unsupported",
            reason=PermanentReason.CONFIGURATION,
        )
        return channel.problem
    except ssl.SSLCertVerificationError:
        channel.problem = PermanentError(
            "smtp: server certificate not trusted",
            code="tls",
            reason=PermanentReason.CONFIGURATION,
        )
        return channel.problem
    except smtplib.SMTPResponseException as exc:
        _reset(backend)
        return classify(exc.smtp_code, stage="message")
    except (smtplib.SMTPException, OSError) as exc:
        _drop(backend)
        # The server is out of reach: the other messages of this round wait for their retry.
        channel.problem = TransientError(
            f"smtp: connection failed ({type(exc).__name__})", code="network"
        )
        return channel.problem
    return str(mail.extra_headers.get("Message-ID", ""))


def _reset(backend: _Backend) -> None:
    try:
        if backend.connection is not None:
            backend.connection.rset()
    except (smtplib.SMTPException, OSError):
        _drop(backend)


def _drop(backend: _Backend) -> None:
    try:
        backend.close()
    except (smtplib.SMTPException, OSError):
        backend.connection = None


def _record(run: rm.ReportRun, outcome: str | ChannelError, now: datetime) -> str:
    """Write a try's outcome while the row is still this claim's; returns the new status."""
    fields: dict[str, Any]
    if isinstance(outcome, str):
        fields = {"status": SENT, "sent_at": now, "message_id": outcome[:200], "error": ""}
    else:
        code = f"{outcome.code}: " if outcome.code else ""
        error = f"{code}{outcome.detail}"[:300]
        if isinstance(outcome, PermanentError) or run.attempts >= MAX_ATTEMPTS:
            fields = {"status": FAILED, "error": error}
        else:
            delay = plan_domain.backoff(
                run.attempts,
                base=BACKOFF_BASE,
                cap=BACKOFF_CAP,
                rand=random.random(),  # noqa: S311 - jitter, not a secret
            )
            fields = {"status": PENDING, "next_try_at": now + delay, "error": error}
    done = rm.ReportRun.objects.filter(pk=run.pk, status=SENDING, attempts=run.attempts).update(
        **fields
    )
    if not done:
        return "lost"
    if fields["status"] == SENT and run.purpose == SCHEDULED and run.schedule_id:
        rm.ReportSchedule.objects.filter(pk=run.schedule_id).filter(
            Q(last_sent_month__isnull=True) | Q(last_sent_month__lt=run.month)
        ).update(last_sent_month=run.month)
    return str(fields["status"])


def send_pending(
    now: datetime | None = None, *, limit: int = 50, ids: Sequence[int] | None = None
) -> int:
    """Send the report e-mails that are due (or the pending rows of `ids`); returns how many
    the mail servers accepted."""
    fixed = now is not None  # a caller's clock (tests) also stamps the outcomes
    now = now or utc_now()
    claimed = claim(now, limit, ids)
    if not claimed:
        return 0
    runs = list(
        rm.ReportRun.objects.filter(pk__in=claimed, status=SENDING)
        .select_related("department__organisation")
        .order_by("organisation_id", "department_id", "month", "id")
    )
    attachments: dict[tuple[int, date, str], tuple[str, bytes] | ChannelError] = {}
    channels: dict[int, _Channel] = {}
    outcomes: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    sent = 0
    try:
        for run in runs:
            key = (run.department_id, run.month, run.language)
            if key not in attachments:
                try:
                    data = generate(
                        run.department, run.month, language=run.language, purpose="email"
                    )
                    attachments[key] = (pdf.filename(run.department, run.month), data)
                except Exception as exc:  # a report that cannot be made is retried later
                    log.exception("report %s %s could not be made", run.department_id, run.month)
                    attachments[key] = TransientError(f"report: {type(exc).__name__}")
            if run.organisation_id not in channels:
                channels[run.organisation_id] = _channel(run.organisation_id)
            channel = channels[run.organisation_id]
            made = attachments[key]
            outcome: str | ChannelError
            if isinstance(made, ChannelError):
                outcome = made
            else:
                try:
                    outcome = _deliver(channel, _compose(run, channel, made))
                except ChannelError as exc:
                    outcome = exc
            status = _record(run, outcome, now if fixed else utc_now())
            outcomes[run.organisation_id][status].append(run.pk)
            sent += int(status == SENT)
            if status == FAILED:
                log.warning(
                    "report e-mail %s failed after %s tries: %s", run.pk, run.attempts, outcome
                )
    finally:
        for channel in channels.values():
            if channel.backend is not None:
                _drop(channel.backend)
    for org_id, by_status in outcomes.items():
        audit.append(
            action="report.send",
            organisation_id=org_id,
            actor_name=SYSTEM,
            object_type="reports.reportrun",
            detail={str(status): ids[:500] for status, ids in by_status.items()},
        )
    return sent


def send_due(now: datetime | None = None) -> int:
    """The worker's hook: queue the reports whose day has come, send what is due (first
    tries and retries). Returns how many e-mails were accepted."""
    now = now or utc_now()
    queue_due(now)
    total = 0
    for _round in range(ROUNDS):
        sent = send_pending(now, limit=BATCH)
        total += sent
        if sent < BATCH:
            break
    return total


def send_test(actor: Actor, department_id: int, month: date | None = None) -> rm.ReportRun:
    """E-mail a copy of the department's report (default: last month) to the signed-in user
    now, as a test of the content and of the organisation's e-mail settings. A test copy is
    not the monthly e-mail: the department's recipients still get theirs on the day."""
    dept = selectors.department(actor, department_id)
    address = (actor.user.email or "").strip()
    if not address:
        raise ValidationFailed(
            details={"__all__": [gettext("Your account has no e-mail address.")]}
        )
    month = month or selectors.last_month(dept)
    schedule = selectors.schedule_of(dept)
    language = schedule.language if schedule else (actor.user.language or "zh-hans")
    now = utc_now()
    with transaction.atomic():
        run = rm.ReportRun.objects.create(
            organisation_id=dept.organisation_id,
            department=dept,
            schedule=schedule,
            month=month,
            purpose=TEST,
            recipient=address,
            staff=actor.user,
            language=language,
            next_try_at=now,
            created_at=now,
            requested_by=actor.user,
        )
        audit.record(
            actor,
            "report.send_test",
            obj=run,
            detail={"department": dept.pk, "month": f"{month:%Y-%m}"},
        )
    send_pending(ids=[run.pk])
    run.refresh_from_db()
    return run


def send_month(
    department: Department, month: date, *, requested_by: Staff | None = None
) -> tuple[int, int]:
    """Queue a month's report for the department's recipients and send it now (the command
    line's ``--send``). Returns (rows added, e-mails accepted); recipients who had it
    already are not sent it again."""
    added = queue(department, month, requested_by=requested_by)
    ids = list(
        rm.ReportRun.objects.filter(
            department=department, month=month, purpose=SCHEDULED, status=PENDING
        ).values_list("pk", flat=True)
    )
    return added, send_pending(ids=ids) if ids else 0


def failed_runs(department: Department, month: date) -> list[rm.ReportRun]:
    """The month's monthly e-mails of the department that are not (yet) delivered."""
    return list(
        rm.ReportRun.objects.filter(department=department, month=month, purpose=SCHEDULED)
        .exclude(status=SENT)
        .order_by("recipient")
    )
