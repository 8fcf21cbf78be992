"""The monthly department report: the PDF, its download scope, the e-mail schedule over a real
SMTP conversation (aiosmtpd on loopback), idempotence, retries, the organisation's day, audit."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pypdf
import pytest
from django.core.management import call_command
from django.utils import translation
from django.utils.translation import gettext_lazy

from careloop.accounts.models import Staff
from careloop.analytics import registry
from careloop.analytics.reports import models as rm
from careloop.analytics.reports import pdf, services
from careloop.audit.models import AuditEvent
from careloop.channels.models import ChannelConfig
from tests.security.scenario import client_for

OCTOBER = date(2026, 10, 1)
# 2026-11-01 00:00 in Asia/Shanghai is 2026-10-31 16:00 UTC.
NOV_1_LOCAL_MIDNIGHT = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
HEADS = {"head.cardiology": "head.cardio@hospital.example"}


# --- a test metric (the real ones are written in parallel; these have hand-known figures) -----


def _women(cohort: registry.Cohort, months: registry.Months) -> registry.Computed:
    patients = cohort.patients()
    total = patients.count()
    women = patients.filter(sex="female").count()
    return {
        m: {
            "women": registry.Value(women, total),
            "men": registry.Value(total - women, total),
            "patients": registry.Value(total),  # a plain count among the shares
        }
        for m in months
    }


def _hours(cohort: registry.Cohort, months: registry.Months) -> registry.Computed:
    # The first month has no figure (nothing to take a median of).
    return {
        m: {"median": registry.Value(2.5 + i) if i else registry.Value(0, 0)}
        for i, m in enumerate(months)
    }


def _broken(cohort: registry.Cohort, months: registry.Months) -> registry.Computed:
    raise RuntimeError("not ready")


TEST_METRICS = (
    registry.Metric(
        key="test_report_women",
        title=gettext_lazy("Share of women"),
        definition=gettext_lazy("Women ÷ patients of the department, as of the month end."),
        kind="share",
        parts=(
            registry.Part("women", gettext_lazy("women"), colour="#009E73"),
            registry.Part("men", gettext_lazy("men"), colour="#0072B2"),
            registry.Part("patients", gettext_lazy("patients"), drill=False),
        ),
        compute=_women,
        headline="women",
        target=0.5,
    ),
    registry.Metric(
        key="test_report_hours",
        title=gettext_lazy("Median response hours"),
        definition=gettext_lazy("Median hours from raised to acknowledged."),
        kind="hours",
        parts=(registry.Part("median", gettext_lazy("median")),),
        compute=_hours,
    ),
    registry.Metric(
        key="test_report_broken",
        title=gettext_lazy("A figure that fails"),
        definition=gettext_lazy("Always fails."),
        kind="count",
        parts=(registry.Part("n", gettext_lazy("n")),),
        compute=_broken,
    ),
)
KEYS = [m.key for m in TEST_METRICS]


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the test metrics in the registry while a test runs (the real ones come back)."""
    registry.all_metrics()  # import the real ones first, so they are not imported mid-test
    saved = dict(registry.METRICS)
    registry.METRICS.clear()
    for metric in TEST_METRICS:
        registry.register(metric)
    try:
        yield
    finally:
        registry.METRICS.clear()
        registry.METRICS.update(saved)


@pytest.fixture
def patients(world: Any, make_patient: Any) -> None:
    """Cardiology: 2 women and 1 man (2/3 women); endocrinology: 1 woman."""
    make_patient(sex="female")
    make_patient(sex="female")
    make_patient(sex="male")
    make_patient("nurse.endocrinology", sex="female")


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


# --- a real SMTP server on loopback ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """aiosmtpd on 127.0.0.1: keeps every accepted message; `refuse` answers RCPT with a code."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.received: list[tuple[str, EmailMessage]] = []
        self.refuse = ""
        self._controller: Any = None

    def start(self) -> Mailbox:
        from aiosmtpd.controller import Controller

        box = self

        class Handler:
            async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if box.refuse:
                    return f"{box.refuse} refused for the test"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                mail = message_from_bytes(envelope.content, policy=policy.default)
                for rcpt in envelope.rcpt_tos:
                    box.received.append((rcpt, mail))  # type: ignore[arg-type]
                return "250 Message accepted"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self) -> list[str]:
        return sorted(rcpt for rcpt, _ in self.received)

    def config(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "starttls": False,
            "from_address": "随访中心 <care@hospital.example>",
            "timeout": 5,
        }


@pytest.fixture
def mailbox(world: Any) -> Iterator[Mailbox]:
    box = Mailbox()
    cfg = ChannelConfig(organisation=world.org, kind="email", provider="smtp")
    cfg.config = box.config()
    cfg.save()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def schedule(world: Any) -> rm.ReportSchedule:
    """Cardiology's report e-mailed on the 1st, in Chinese, to its head and to its doctor."""
    for username, address in {**HEADS, "doctor.cardiology": "doctor@hospital.example"}.items():
        Staff.objects.filter(username=username).update(email=address)
    s = rm.ReportSchedule.objects.create(
        organisation=world.org,
        department=world.cardio,
        day=1,
        language="zh-hans",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    s.extra_recipients.set([world.staff["doctor.cardiology"]])
    return s


def runs() -> list[tuple[str, str, int]]:
    return sorted(rm.ReportRun.objects.values_list("recipient", "status", "attempts"))


# --- the PDF ----------------------------------------------------------------------------------


class TestPdf:
    def test_holds_the_department_its_figures_and_the_definitions(
        self, world: Any, patients: None, metrics: None
    ) -> None:
        data = pdf.build(world.cardio, OCTOBER, language="en", today=date(2026, 11, 20))
        assert data.startswith(b"%PDF-")
        text = pdf_text(data)
        assert "Cardiology" in text and "Test Hospital" in text
        assert "Month: 2026-10" in text
        # 2 of the 3 cardiology patients are women; the endocrinology patient is not counted.
        assert "66.7%" in text and "2 / 3" in text
        # The parts table: part, numerator, denominator, value.
        assert "women\n2\n3\n66.7%" in text and "men\n1\n3\n33.3%" in text
        assert "patients\n3\n—\n3\n" in text  # a count, not "300.0%"
        assert "1 / 1" not in text and "4 / 4" not in text
        # The amount without a denominator: October is the 12th month of the trend (2.5 + 11).
        assert "13.5 h" in text
        assert "Definition: Women ÷ patients of the department, as of the month end." in text
        assert "This figure could not be computed." in text  # the failing metric, not a crash
        assert "target 50%" in text  # the goal line on the chart
        assert "25-11" in text and "26-10" in text  # the 12-month axis, Nov 2025 – Oct 2026

    def test_chinese_text_is_embedded_as_text(
        self, world: Any, patients: None, metrics: None
    ) -> None:
        data = pdf.build(world.cardio, OCTOBER, language="zh-hans", today=date(2026, 11, 20))
        text = pdf_text(data)
        assert "心内科" in text and "2 / 3" in text
        assert pdf.cjk_font() == pdf.FONT_NAME  # the machine's TrueType font, subset-embedded
        assert b"/FontFile2" in data

    def test_the_other_department_counts_its_own_patients(
        self, world: Any, patients: None, metrics: None
    ) -> None:
        text = pdf_text(pdf.build(world.endo, OCTOBER, language="en"))
        assert "Endocrinology" in text and "1 / 1" in text and "100.0%" in text

    def test_every_registered_metric_has_a_section(self, world: Any, patients: None) -> None:
        report = pdf.collect(world.cardio, OCTOBER, today=date(2026, 11, 20))
        data = pdf.render(report, "en")
        flat = "".join(pdf_text(data).split())
        assert [s.metric.key for s in report.sections] == list(registry.all_metrics())
        with translation.override("en"):
            for section in report.sections:
                assert "".join(str(section.metric.title).split()) in flat, section.metric.key


# --- the download -----------------------------------------------------------------------------


class TestDownload:
    def url(self, world: Any, dept: Any = None, month: str = "2026-10") -> str:
        return f"/analytics/reports/{(dept or world.cardio).pk}/{month}.pdf"

    def test_the_head_downloads_the_departments_report(
        self, world: Any, patients: None, metrics: None
    ) -> None:
        Staff.objects.filter(username="head.cardiology").update(language="en")
        response = client_for("head.cardiology").get(self.url(world))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert 'filename="careloop-cardiology-2026-10.pdf"' in response["Content-Disposition"]
        assert "2 / 3" in pdf_text(response.content)
        events = AuditEvent.objects.filter(actor="head.cardiology", outcome="success")
        actions = set(events.values_list("action", flat=True))
        assert {"report.generate", "report.download"} <= actions
        download = events.get(action="report.download")
        assert download.object_id == str(world.cardio.pk)
        assert download.detail["month"] == "2026-10"

    def test_an_admin_downloads_any_department_of_the_organisation(
        self, world: Any, metrics: None
    ) -> None:
        assert client_for("admin").get(self.url(world, world.endo)).status_code == 200

    def test_another_department_is_not_found(self, world: Any, metrics: None) -> None:
        response = client_for("head.cardiology").get(self.url(world, world.endo))
        assert response.status_code == 404
        assert AuditEvent.objects.filter(
            actor="head.cardiology", action="report.view", outcome="denied"
        ).exists()
        assert not AuditEvent.objects.filter(action="report.generate").exists()

    def test_another_organisation_is_not_found(self, world: Any, metrics: None) -> None:
        assert client_for("admin.other").get(self.url(world)).status_code == 404

    @pytest.mark.parametrize("username", ["nurse.cardiology", "doctor.cardiology", "auditor"])
    def test_other_roles_are_refused(self, world: Any, metrics: None, username: str) -> None:
        assert client_for(username).get(self.url(world)).status_code == 403
        assert not AuditEvent.objects.filter(action="report.generate").exists()

    @pytest.mark.parametrize("month", ["2026-13", "2026-00", "2999-01"])
    def test_impossible_or_future_months_are_not_found(
        self, world: Any, metrics: None, month: str
    ) -> None:
        assert client_for("head.cardiology").get(self.url(world, month=month)).status_code == 404


# --- the e-mail -------------------------------------------------------------------------------


class TestEmail:
    def test_the_report_goes_to_the_heads_and_the_other_recipients_with_the_pdf(
        self, world: Any, patients: None, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT) == 2
        assert mailbox.to() == ["doctor@hospital.example", "head.cardio@hospital.example"]
        rcpt, mail = mailbox.received[0]
        assert mail["To"] == rcpt
        assert "心内科" in str(mail["Subject"]) and "2026-10" in str(mail["Subject"])
        assert mail["Message-ID"].endswith("@hospital.example>")
        attachments = list(mail.iter_attachments())
        assert [a.get_content_type() for a in attachments] == ["application/pdf"]
        assert attachments[0].get_filename() == "careloop-cardiology-2026-10.pdf"
        body = attachments[0].get_content()
        assert body.startswith(b"%PDF-")
        text = pdf_text(body)
        assert "心内科" in text and "2 / 3" in text
        assert runs() == [
            ("doctor@hospital.example", "sent", 1),
            ("head.cardio@hospital.example", "sent", 1),
        ]
        schedule.refresh_from_db()
        assert schedule.last_sent_month == OCTOBER

    def test_each_address_gets_the_month_once(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        services.send_due(NOV_1_LOCAL_MIDNIGHT)
        services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(hours=1))
        services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(days=10))
        # A forced re-send (the command line's --send) skips who has it already.
        assert services.send_month(world.cardio, OCTOBER) == (0, 0)
        # Even a schedule that forgot it was sent adds nobody twice.
        rm.ReportSchedule.objects.update(last_sent_month=None)
        services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(days=11))
        assert len(mailbox.received) == 2
        assert rm.ReportRun.objects.count() == 2

    def test_a_mail_server_outage_is_retried_later_not_lost(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        mailbox.stop()
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT) == 0
        assert runs() == [
            ("doctor@hospital.example", "pending", 1),
            ("head.cardio@hospital.example", "pending", 1),
        ]
        waiting = rm.ReportRun.objects.first()
        assert waiting is not None
        assert waiting.error.startswith("network: smtp: connection failed")
        # Backoff: the first retry waits between 7.5 and 15 minutes.
        assert (
            timedelta(minutes=7.5)
            <= waiting.next_try_at - NOV_1_LOCAL_MIDNIGHT
            <= timedelta(minutes=15)
        )
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(minutes=5)) == 0
        assert runs()[0][2] == 1  # not tried again before its time
        mailbox.start()
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(hours=1)) == 2
        assert mailbox.to() == ["doctor@hospital.example", "head.cardio@hospital.example"]
        assert runs() == [
            ("doctor@hospital.example", "sent", 2),
            ("head.cardio@hospital.example", "sent", 2),
        ]

    def test_a_temporary_refusal_is_retried_and_a_permanent_one_fails(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        mailbox.refuse = "451"
        services.send_due(NOV_1_LOCAL_MIDNIGHT)
        assert {status for _, status, _ in runs()} == {"pending"}
        mailbox.refuse = "550"
        services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(hours=1))
        assert {status for _, status, _ in runs()} == {"failed"}
        assert rm.ReportRun.objects.filter(error__startswith="550").count() == 2
        assert mailbox.received == []

    def test_gives_up_after_the_last_try(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        mailbox.refuse = "451"
        moment = NOV_1_LOCAL_MIDNIGHT
        for _ in range(services.MAX_ATTEMPTS):
            services.send_due(moment)
            moment += timedelta(hours=7)  # past the longest backoff
        assert runs() == [
            ("doctor@hospital.example", "failed", services.MAX_ATTEMPTS),
            ("head.cardio@hospital.example", "failed", services.MAX_ATTEMPTS),
        ]
        mailbox.refuse = ""
        services.send_due(moment)
        assert mailbox.received == []

    def test_without_an_email_channel_the_run_fails_with_the_reason(
        self, world: Any, metrics: None, schedule: Any
    ) -> None:
        services.send_due(NOV_1_LOCAL_MIDNIGHT)
        assert {status for _, status, _ in runs()} == {"failed"}
        assert rm.ReportRun.objects.filter(error__startswith="no_channel").count() == 2

    def test_sending_is_audited(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        services.send_due(NOV_1_LOCAL_MIDNIGHT)
        events = AuditEvent.objects.filter(organisation_id=world.org.pk, actor="system:reports")
        by_action = {e.action: e for e in events}
        assert set(by_action) == {"report.queue", "report.generate", "report.send"}
        assert by_action["report.queue"].detail["added"] == 2
        assert by_action["report.generate"].detail["purpose"] == "email"
        assert sorted(by_action["report.send"].detail["sent"]) == sorted(
            rm.ReportRun.objects.values_list("pk", flat=True)
        )
        # One PDF made for both recipients of the same language.
        assert events.filter(action="report.generate").count() == 1


class TestScheduleDay:
    """The day of the month is the organisation's (Asia/Shanghai) calendar day."""

    def test_sent_on_the_first_in_the_organisations_zone_not_in_utc(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        schedule.last_sent_month = date(2026, 9, 1)
        schedule.save()
        # 31 October 23:59 in Shanghai (15:59 UTC): not yet November there.
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT - timedelta(minutes=1)) == 0
        assert mailbox.received == []
        # 1 November 00:00 in Shanghai, still 31 October in UTC: October's report goes.
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT) == 2
        assert set(rm.ReportRun.objects.values_list("month", flat=True)) == {OCTOBER}

    def test_a_later_day_waits_for_that_day(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        schedule.day = 5
        schedule.last_sent_month = date(2026, 9, 1)
        schedule.save()
        for day in range(4):  # 1–4 November, local noon
            services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(days=day, hours=12))
        assert mailbox.received == []
        # The worker was down on the 5th: the 6th still sends October's report.
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(days=5, hours=12)) == 2

    def test_a_schedule_made_after_this_months_day_starts_next_month(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        schedule.created_at = NOV_1_LOCAL_MIDNIGHT + timedelta(days=9)  # 10 November
        schedule.save()
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT + timedelta(days=10)) == 0
        # 1 December (local): November's report.
        assert services.send_due(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == 2
        assert set(rm.ReportRun.objects.values_list("month", flat=True)) == {date(2026, 11, 1)}

    def test_an_inactive_schedule_sends_nothing(
        self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any
    ) -> None:
        schedule.active = False
        schedule.save()
        assert services.send_due(NOV_1_LOCAL_MIDNIGHT) == 0
        assert rm.ReportRun.objects.count() == 0


class TestDispatcherHook:
    def test_the_worker_runs_the_report_hook_at_most_hourly(
        self, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from careloop.reminders.dispatcher import Dispatcher

        calls: list[datetime] = []
        monkeypatch.setattr(services, "send_due", lambda now=None: calls.append(now) or 0)
        dispatcher = Dispatcher()
        dispatcher.tick()
        dispatcher.tick()
        assert len(calls) == 1
        dispatcher._last_report -= dispatcher.report_every + 1  # an hour later
        dispatcher.tick()
        assert len(calls) == 2


# --- the schedules page -----------------------------------------------------------------------


class TestSchedulePage:
    def form(self, **changes: Any) -> dict[str, Any]:
        return {"active": "on", "day": "3", "language": "en", **changes}

    def test_the_head_turns_the_email_on_with_another_recipient(self, world: Any) -> None:
        nurse = world.staff["nurse.cardiology"]
        Staff.objects.filter(pk=nurse.pk).update(email="nurse@hospital.example")
        url = f"/analytics/reports/schedules/{world.cardio.pk}/"
        page = client_for("head.cardiology").get(url)
        assert page.status_code == 200
        response = client_for("head.cardiology").post(url, self.form(extra_recipients=[nurse.pk]))
        assert response.status_code == 302
        saved = rm.ReportSchedule.objects.get(department=world.cardio)
        assert (saved.active, saved.day, saved.language) == (True, 3, "en")
        assert list(saved.extra_recipients.all()) == [nurse]
        assert saved.created_by == world.staff["head.cardiology"]
        event = AuditEvent.objects.get(action="report.schedule")
        assert event.actor == "head.cardiology"
        assert event.detail["extra_recipients"] == [nurse.pk]
        listing = client_for("head.cardiology").get("/analytics/reports/schedules/")
        assert listing.status_code == 200
        assert b"nurse.cardiology" in listing.content  # among the recipients

    def test_staff_of_another_organisation_cannot_be_added(self, world: Any) -> None:
        outsider = world.staff["nurse.other"]
        Staff.objects.filter(pk=outsider.pk).update(email="x@other.example")
        response = client_for("head.cardiology").post(
            f"/analytics/reports/schedules/{world.cardio.pk}/",
            self.form(extra_recipients=[outsider.pk]),
        )
        assert response.status_code == 422
        assert not rm.ReportSchedule.objects.exists()

    @pytest.mark.parametrize("day", ["0", "29", "x"])
    def test_the_day_is_one_to_twenty_eight(self, world: Any, day: str) -> None:
        response = client_for("head.cardiology").post(
            f"/analytics/reports/schedules/{world.cardio.pk}/", self.form(day=day)
        )
        assert response.status_code == 422

    def test_another_departments_schedule_is_not_found(self, world: Any) -> None:
        url = f"/analytics/reports/schedules/{world.endo.pk}/"
        assert client_for("head.cardiology").get(url).status_code == 404
        assert client_for("head.cardiology").post(url, self.form()).status_code == 404
        assert not rm.ReportSchedule.objects.exists()

    def test_the_list_shows_only_the_heads_departments(self, world: Any) -> None:
        Staff.objects.filter(username="head.cardiology").update(language="en")
        page = client_for("head.cardiology").get("/analytics/reports/schedules/")
        assert page.status_code == 200
        assert [r["department"].code for r in page.context["rows"]] == ["cardiology"]
        admin = client_for("admin").get("/analytics/reports/schedules/")
        assert {r["department"].code for r in admin.context["rows"]} == {
            "cardiology",
            "endocrinology",
        }

    def test_a_nurse_is_refused(self, world: Any) -> None:
        assert (
            client_for("nurse.cardiology").get("/analytics/reports/schedules/").status_code == 403
        )

    def test_send_a_test_copy_to_me(
        self, world: Any, patients: None, metrics: None, mailbox: Mailbox
    ) -> None:
        Staff.objects.filter(username="head.cardiology").update(
            email="head.cardio@hospital.example", language="en"
        )
        response = client_for("head.cardiology").post(
            f"/analytics/reports/schedules/{world.cardio.pk}/send/", follow=True
        )
        assert response.status_code == 200
        assert b"A test copy was sent to head.cardio@hospital.example" in response.content
        assert mailbox.to() == ["head.cardio@hospital.example"]
        run = rm.ReportRun.objects.get()
        assert (run.purpose, run.status) == ("test", "sent")
        assert AuditEvent.objects.filter(actor="head.cardiology", action="report.send_test")
        # A test copy is not the monthly e-mail: the head still gets last month's on the day.
        assert services.queue(world.cardio, run.month) == 1

    def test_the_test_copy_needs_an_address(self, world: Any, metrics: None) -> None:
        Staff.objects.filter(username="head.cardiology").update(language="en")
        response = client_for("head.cardiology").post(
            f"/analytics/reports/schedules/{world.cardio.pk}/send/", follow=True
        )
        assert b"Your account has no e-mail address." in response.content
        assert not rm.ReportRun.objects.exists()

    def test_the_test_copy_is_post_only(self, world: Any) -> None:
        url = f"/analytics/reports/schedules/{world.cardio.pk}/send/"
        assert client_for("head.cardiology").get(url).status_code == 405


# --- the command line -------------------------------------------------------------------------


class TestCommand:
    def test_writes_the_pdf(self, world: Any, patients: None, metrics: None, tmp_path: Any) -> None:
        out = tmp_path / "cardio.pdf"
        call_command(
            "report",
            "monthly",
            "--department",
            "cardiology",
            "--organisation",
            "test",
            "--month",
            "2026-10",
            "--language",
            "en",
            "--out",
            str(out),
            stdout=io.StringIO(),
        )
        text = pdf_text(out.read_bytes())
        assert "Cardiology" in text and "2 / 3" in text
        event = AuditEvent.objects.get(action="report.generate")
        assert (event.actor, event.detail["purpose"]) == ("system:cli", "cli")

    def test_sends_once(self, world: Any, metrics: None, mailbox: Mailbox, schedule: Any) -> None:
        args = ["report", "monthly", "--department", "cardiology", "--organisation", "test"]
        out = io.StringIO()
        call_command(*args, "--month", "2026-10", "--send", stdout=out)
        call_command(*args, "--month", "2026-10", "--send", stdout=out)
        assert "queued: 2, sent now: 2" in out.getvalue()
        assert "queued: 0, sent now: 0" in out.getvalue()
        assert len(mailbox.received) == 2

    def test_an_ambiguous_department_code_asks_for_the_organisation(self, world: Any) -> None:
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="--organisation"):
            call_command("report", "monthly", "--department", "cardiology", "--out", "x.pdf")
