"""The simulation loop: hour by hour through the product's own services on a set clock.

Every hour: plans are topped up, experiments and send-time learning route the coming
reminders, the dispatcher sends what is due through the in-process simulation providers, the
simulated patients answer (or not) and upload readings, visits happen or are missed, the alert
sweeps run. Every day: send-time learning folds in outcomes, segments are recomputed, the
nurses work through their tasks and alerts up to their capacity. At the end the risk model is
trained on the simulated history and everything is summarised.
"""

from __future__ import annotations

import heapq
import importlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.kit import clock
from careloop.simulator import population, provider, summary, world

log = logging.getLogger("careloop.simulator")

OPTIONAL = ("experiments", "sendtime", "segments", "risk")
PLAN_EVERY_HOURS = 12
# The worker sweeps every minute; an alert raised up to this many hours late changes nothing
# that a day-level staffing estimate shows, and the sweeps cost as much as the patients.
SWEEP_EVERY_HOURS = 3
NURSE_HOUR = 14  # local hour at which the nurses work through their lists
MESSAGE_HOUR = 20
BOOK_AHEAD_DAYS = 3
WORKER = "simulator"


@dataclass
class Options:
    patients: int
    days: int
    seed: int
    start: date
    control_share: float = 0.2
    nurse_capacity: int = 25  # calls a nurse makes in a day
    without: frozenset[str] = frozenset()
    # In a database shared with real organisations, everything the loop does is limited to the
    # simulated one: its own reminders only, and no sweeps that span every organisation.
    into_current: bool = False


@dataclass(order=True)
class Action:
    at: datetime
    order: int
    kind: str = field(compare=False)  # ack | message
    pid: int = field(compare=False)
    data: dict[str, Any] = field(compare=False, default_factory=dict)


class Simulation:
    def __init__(self, options: Options, emit: Callable[[str], None] | None = None) -> None:
        self.o = options
        self.emit = emit or (lambda text: None)
        self.rng = random.Random(options.seed)  # noqa: S311 - a simulation, not secrets
        self.zone = ZoneInfo(world.TIME_ZONE)
        self.start = datetime.combine(options.start, datetime.min.time(), tzinfo=self.zone)
        self.end = self.start + timedelta(days=options.days)
        self.actions: list[Action] = []
        self._order = 0
        self.last_attempt_id = 0
        self.answered: set[int] = set()  # occurrences the patient has answered (or will)
        self.doses: dict[int, tuple[int, int]] = {}  # medication occurrence -> (pid, day)
        self.dose_done: set[int] = set()
        self.readings: list[dict[str, Any]] = []
        self.calls: Counter[tuple[int, str]] = Counter()  # (day, nurse username)
        self.reached: Counter[int] = Counter()
        self.messages = 0
        self.timings: dict[str, float] = {}
        self.modules: dict[str, Any] = {}
        self.notes: list[str] = []

    # --- clock ----------------------------------------------------------------------------

    def set_clock(self, moment: datetime) -> None:
        clock.install(clock.FakeClock(moment.astimezone(clock.UTC), 0.0, time.time()))

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - began

    @staticmethod
    def _atomic(fn: Callable[..., Any], *args: Any) -> Any:
        """One transaction for a batch of patients' answers: the same rows, fewer commits."""
        from django.db import transaction

        with transaction.atomic():
            return fn(*args)

    def _module(self, app: str) -> Any:
        if app in self.o.without:
            return None
        if app not in self.modules:
            self.modules[app] = importlib.import_module(f"careloop.{app}.services")
        return self.modules[app]

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        began = time.perf_counter()
        previous = clock.fake()
        provider.install()
        try:
            self.set_clock(self.start)
            self.emit(f"building {self.o.patients} patients")
            self.world = self._timed(
                "setup",
                lambda: world.build(
                    self.rng,
                    patients=self.o.patients,
                    days=self.o.days,
                    seed=self.o.seed,
                    start=self.start,
                    start_day=self.o.start,
                ),
            )
            self._configure_learning()
            setup_seconds = time.perf_counter() - began
            self.emit(f"set up in {setup_seconds:.1f} s; simulating {self.o.days} days")
            for hour in range(self.o.days * 24):
                self._hour(self.start + timedelta(hours=hour), hour)
            self.set_clock(self.end)
            self._flush_actions(self.end)
            self._settle_doses(self.o.days)
            finals = self._finish()
            self._stop_sending()
            result = summary.build(self, finals)
            result["runtime_seconds"] = round(time.perf_counter() - began, 1)
            result["setup_seconds"] = round(setup_seconds, 1)
            result["seconds_by_step"] = {
                k: round(v, 1) for k, v in sorted(self.timings.items(), key=lambda kv: -kv[1])
            }
            return result
        finally:
            provider.uninstall()
            clock.install(previous)

    def _configure_learning(self) -> None:
        self.experiment: Any = None
        if self._module("experiments") is not None:
            self.experiment = self._start_experiment()
        sendtime = self._module("sendtime")
        if sendtime is not None:
            from careloop.sendtime import models as sendtime_models

            sendtime_models.Settings.objects.update_or_create(
                organisation=self.world.org,
                defaults={"enabled": True, "control_share": self.o.control_share},
            )

    def _start_experiment(self) -> Any:
        """A wording experiment on the weekly reading, started through the product's own form
        and services; some simulated patients answer the personal wording better."""
        import json

        from careloop.experiments import design
        from careloop.experiments import services as experiments
        from careloop.experiments.forms import ExperimentForm

        form = ExperimentForm(
            {
                "code": "sim-wording",
                "name": "个性化措辞（模拟）",
                "hypothesis": "A personal wording raises acknowledgement of the weekly reading.",
                "factor": "wording",
                "kinds": ["education"],
                "population": "all",
                "arms": json.dumps(design.example_arms("wording"), ensure_ascii=False),
                "primary_outcome": "ack_rate",
                "min_per_arm": max(5, self.o.patients // 10),
                "max_per_arm": self.o.patients,
                "looks": 4,
                "alpha": 0.05,
                "seed": self.o.seed,
            },
            organisation_id=self.world.org.pk,
        )
        if not form.is_valid():
            raise world.SimulationError(f"the simulated experiment is not valid: {form.errors}")
        exp = experiments.save(self.world.admin, form.cleaned_data)
        return experiments.start(self.world.admin, exp.pk, now=self.start)

    def _hour(self, moment: datetime, hour: int) -> None:
        day = hour // 24
        local = moment.astimezone(self.zone)
        self.set_clock(moment)
        org_id = self.world.org.pk
        if local.hour == 0:
            self._daily(moment, day)
        self._timed("patients", lambda: self._atomic(self._flush_actions, moment))
        # Both look 36 hours ahead, so every few hours reaches every reminder in time (the
        # worker runs them hourly; here the hours between cost only time).
        if local.hour % PLAN_EVERY_HOURS == 0:
            experiments = self._module("experiments")
            if experiments is not None:
                self._timed("experiments.apply", lambda: experiments.apply(org_id, now=moment))
            sendtime = self._module("sendtime")
            if sendtime is not None:
                self._timed("sendtime.plan", lambda: sendtime.plan(org_id, now=moment))
        self._timed("dispatcher", lambda: self._dispatch(moment))
        self._timed("patients", lambda: self._read_sent(day))
        if 8 <= local.hour <= 16:
            self._timed("visits", lambda: self._visits(moment, day))
        if local.hour == NURSE_HOUR:
            self._timed("nurses", lambda: self._atomic(self._nurses, day))
        if local.hour == MESSAGE_HOUR:
            self._timed("messages", lambda: self._atomic(self._write_messages, moment, day))
        if local.hour == 23:
            self._settle_doses(day)
        if local.hour % SWEEP_EVERY_HOURS == 0 or local.hour == NURSE_HOUR - 1:
            self._timed("alert sweeps", lambda: self._sweeps(moment))

    def _daily(self, moment: datetime, day: int) -> None:
        from careloop.appointments import services as appointment_services
        from careloop.careplans import services as plan_services

        org_id = self.world.org.pk
        local_day = moment.astimezone(self.zone).date()

        def top_up() -> None:
            for _ in range(50):
                if not plan_services.top_up(moment, limit=500):
                    break

        self._timed("top up", top_up)
        self._timed("appointments", lambda: appointment_services.periodic(moment))
        self._timed("bookings", lambda: self._book(day))
        sendtime = self._module("sendtime")
        if sendtime is not None and day > 0:
            self._timed("sendtime.learn", lambda: sendtime.learn(org_id, now=moment))
        if self.experiment is not None and day > 0:
            from careloop.experiments import analysis

            self.experiment.refresh_from_db()
            if self.experiment.status == "running":
                self._timed(
                    "experiments.evaluate", lambda: analysis.evaluate(self.experiment, moment)
                )
        segments = self._module("segments")
        if segments is not None:
            self._timed("segments.recompute", lambda: segments.recompute(org_id, today=local_day))
        if day % 10 == 0:
            self.emit(f"  day {day}/{self.o.days}")

    # --- reminders ---------------------------------------------------------------------------

    def _dispatch(self, moment: datetime) -> None:
        from careloop.reminders import dispatcher

        for _ in range(200):
            if self.o.into_current:
                ids = self._claim_own(moment, 1000)
                stats = dispatcher.process(ids, WORKER, moment) if ids else dispatcher.Stats()
            else:
                stats = dispatcher.run_once(WORKER, now=moment, limit=1000)
            if stats.claimed == 0:
                break

    def _claim_own(self, moment: datetime, limit: int) -> list[int]:
        """The dispatcher's claim, limited to the simulated organisation's reminders."""
        from django.db import transaction
        from django.db.models import Q

        from careloop.kit.clock import span
        from careloop.reminders import dispatcher
        from careloop.reminders import models as rm

        with transaction.atomic():
            qs = rm.Occurrence.objects.filter(
                organisation_id=self.world.org.pk, wake_at__lte=moment
            ).filter(Q(claim_expires__isnull=True) | Q(claim_expires__lt=moment))
            ids = list(qs.order_by("wake_at").values_list("id", flat=True)[:limit])
            if ids:
                rm.Occurrence.objects.filter(id__in=ids).update(
                    claimed_by=WORKER, claim_expires=moment + span(dispatcher.LEASE)
                )
        return ids

    def _read_sent(self, day: int) -> None:
        """The reminders that went out this hour reach the simulated patients."""
        from careloop.reminders import models as rm

        rows = list(
            rm.Attempt.objects.filter(
                organisation_id=self.world.org.pk,
                pk__gt=self.last_attempt_id,
                outcome__in=[rm.Attempt.Outcome.ACCEPTED, rm.Attempt.Outcome.DELIVERED],
            )
            .order_by("pk")
            .values_list(
                "pk",
                "occurrence_id",
                "patient_id",
                "channel",
                "started_at",
                "occurrence__kind",
                "occurrence__payload",
            )
        )
        for pk, occ_id, pid, channel, started, kind, payload in rows:
            self.last_attempt_id = max(self.last_attempt_id, pk)
            sim = self.world.by_pid.get(pid)
            if sim is None:
                continue
            if kind == "medication" and occ_id not in self.doses:
                self.doses[occ_id] = (pid, day)
            if channel == "voice" and self.rng.random() < 0.5:
                sim.lift(day)  # a voice call makes the next days' doses likelier
            if occ_id in self.answered:
                continue
            hour = started.astimezone(self.zone).hour
            chance = sim.answer_probability(hour, channel, day)
            if isinstance(payload, dict) and isinstance(payload.get("wording"), dict):
                chance += sim.traits.wording_lift
            if self.rng.random() >= chance:
                continue
            self.answered.add(occ_id)
            at = started + timedelta(minutes=sim.latency(self.rng, day))
            data: dict[str, Any] = {"occ": occ_id, "kind": kind, "channel": channel}
            if kind == "medication":
                data["reason"] = sim.skip_reason(self.rng)
            self._push(at, "ack", pid, data)

    def _push(self, at: datetime, kind: str, pid: int, data: dict[str, Any]) -> None:
        self._order += 1
        heapq.heappush(self.actions, Action(at, self._order, kind, pid, data))

    def _flush_actions(self, moment: datetime) -> None:
        """What the patients did up to ``moment``: their answers in one batch, as a provider's
        batch of replies arrives."""
        from careloop.reminders import services as reminder_services

        due: list[Action] = []
        while self.actions and self.actions[0].at <= moment:
            action = heapq.heappop(self.actions)
            if action.kind == "ack":
                due.append(action)
        if not due:
            return
        answers = []
        for action in due:
            data = action.data
            reason = data.get("reason", "")
            intake = ""
            if data["kind"] == "medication":
                intake = "skipped" if reason else "taken"
            answers.append(
                reminder_services.Answer(
                    data["occ"], source=data["channel"], intake=intake, reason=reason, at=action.at
                )
            )
        results = reminder_services.acknowledge_many(answers)
        for action in due:
            data = action.data
            if results.get(data["occ"]) not in ("acknowledged", "repeat"):
                continue  # withdrawn meanwhile (e.g. a missed visit's reminder)
            sim = self.world.by_pid[action.pid]
            day = (action.at - self.start) // timedelta(days=1)
            if data["kind"] == "medication" and data["occ"] not in self.dose_done:
                self.dose_done.add(data["occ"])
                sim.record_dose(day, not data.get("reason", ""))
            elif data["kind"] == "measurement":
                sbp, dbp = sim.blood_pressure(self.rng)
                self.readings.append(
                    {
                        "patient": sim.pid,
                        "code": "bp",
                        "systolic": sbp,
                        "diastolic": dbp,
                        "effective": action.at.isoformat(),
                        "source": "patient",
                    }
                )
        if self.readings:
            self._timed("readings", self._ingest)

    def _ingest(self) -> None:
        from careloop.observations import services as observation_services

        items, self.readings = self.readings, []
        observation_services.ingest(
            None, items, organisation_id=self.world.org.pk, source="patient", origin=world.SOURCE
        )

    def _settle_doses(self, day: int) -> None:
        """Doses of the day whose reminder went unanswered: taken or not, by forgetfulness."""
        for occ_id, (pid, dose_day) in list(self.doses.items()):
            if dose_day > day:
                continue
            del self.doses[occ_id]
            if occ_id in self.dose_done or occ_id in self.answered:
                continue
            self.dose_done.add(occ_id)
            sim = self.world.by_pid[pid]
            sim.record_dose(dose_day, sim.takes_unreminded(self.rng, dose_day))

    # --- visits ------------------------------------------------------------------------------

    def _book(self, day: int) -> None:
        from careloop.appointments import services as appointment_services
        from careloop.kit.errors import Conflict, ValidationFailed

        target = day + BOOK_AHEAD_DAYS
        due = [p for p in self.world.patients if p.next_visit_day == target]
        if not due:
            return
        visit_day = (self.start + timedelta(days=target)).date()
        for sim in due:
            dept = self.world.departments[sim.department]
            slots = _open_slots(dept.pk, visit_day)
            sim.next_visit_day = target + self.rng.randint(26, 34)
            for slot_id in slots:
                try:
                    appointment_services.book(
                        self.world.heads[sim.department], sim.pid, slot_id, reason="定期复诊"
                    )
                    break
                except (Conflict, ValidationFailed):
                    continue

    def _visits(self, moment: datetime, day: int) -> None:
        from careloop.appointments import models as am
        from careloop.appointments import services as appointment_services
        from careloop.appointments.services import WrongState
        from careloop.kit.errors import Conflict

        due = list(
            am.Appointment.objects.filter(
                organisation_id=self.world.org.pk,
                status="booked",
                starts_at__gte=moment - timedelta(hours=1),
                starts_at__lt=moment,
            ).values_list("pk", "patient_id", "starts_at")
        )
        for appt_id, pid, starts in due:
            sim = self.world.by_pid.get(pid)
            if sim is None:
                continue
            attends = sim.traits.attends * (1 - 0.6 * sim.decline(day))
            if self.rng.random() >= attends:
                continue  # the no-show sweep marks it after the day
            head = self.world.heads[sim.department]
            try:
                appointment_services.check_in(head, appt_id)
                appointment_services.complete(head, appt_id)
            except (Conflict, WrongState):
                continue
            sbp, dbp = sim.blood_pressure(self.rng, clinic=True)
            self.readings.append(
                {
                    "patient": pid,
                    "code": "bp",
                    "systolic": sbp,
                    "diastolic": dbp,
                    "effective": (starts + timedelta(minutes=10)).isoformat(),
                    "source": "his",
                }
            )
            sim.lift(day)  # a doctor's visit helps for a while, as a call does
        if self.readings:
            self._timed("readings", self._ingest)

    # --- staff ----------------------------------------------------------------------------------

    def _nurses(self, day: int) -> None:
        """Each nurse works through the department's open tasks and alerts, most urgent first,
        up to their capacity; a patient reached takes their medicine better for a few days."""
        from careloop.alerts import models as alm
        from careloop.alerts import services as alert_services
        from careloop.kit.errors import Conflict, NotFound

        org_id = self.world.org.pk
        for key, nurses in self.world.nurses.items():
            dept_id = self.world.departments[key].pk
            alerts = list(
                alm.Alert.objects.filter(
                    organisation_id=org_id, department_id=dept_id, status__in=alm.Alert.ACTIVE
                )
                .order_by("priority_rank", "raised_at", "pk")
                .values_list("pk", "patient_id")
            )
            tasks = list(
                alm.Task.objects.filter(
                    organisation_id=org_id,
                    department_id=dept_id,
                    status=alm.Task.Status.OPEN,
                    assignee_role=alm.Task.Assignee.NURSE,
                )
                .order_by("due_at", "pk")
                .values_list("pk", "patient_id")
            )
            work = [("alert", pk, pid) for pk, pid in alerts] + [
                ("task", pk, pid) for pk, pid in tasks
            ]
            capacity = self.o.nurse_capacity * len(nurses)
            for n, (kind, pk, pid) in enumerate(work[:capacity]):
                nurse = nurses[n % len(nurses)]
                sim = self.world.by_pid.get(pid)
                if sim is None:
                    continue
                reached = self.rng.random() < 0.45 + 0.5 * sim.traits.channel["voice"] / 1.25 * (
                    1 - 0.5 * sim.decline(day)
                )
                self.calls[(day, nurse.user.username)] += 1
                try:
                    if kind == "task":
                        alert_services.close_task(
                            nurse, pk, outcome="reached" if reached else "no_answer"
                        )
                    else:
                        alert_services.resolve_alert(
                            nurse,
                            pk,
                            outcome="contacted_patient" if reached else "other",
                            note="" if reached else "未接通",
                        )
                except (Conflict, NotFound):
                    continue
                if reached:
                    self.reached[day] += 1
                    if self.rng.random() < 0.8:
                        sim.lift(day)

    def _write_messages(self, moment: datetime, day: int) -> None:
        from careloop.messaging import services as messaging
        from careloop.portal.context import PortalActor

        for sim in self.world.patients:
            decline = sim.decline(day)
            if decline >= 0.85:
                continue  # gone quiet
            rate = sim.traits.talks / 30 * (1 + 3 * (0 < decline))
            if self.rng.random() >= rate:
                continue
            subject, body = population.message(self.rng, sim, day, sim.language)
            actor = PortalActor(
                patient_id=sim.pid,
                organisation_id=self.world.org.pk,
                session_id=0,
                source=world.SOURCE,
            )
            messaging.start_thread(actor, subject=subject, body=body)
            self.messages += 1

    def _sweeps(self, moment: datetime) -> None:
        from careloop.alerts import sweeps

        sweeps.absence(moment, organisation_id=self.world.org.pk)
        if not self.o.into_current:  # these two sweep every organisation in the database
            sweeps.missed_doses(moment)
            sweeps.escalate(moment)

    # --- the end ----------------------------------------------------------------------------

    def _stop_sending(self) -> None:
        """The simulated organisation's reminders beyond the simulated days are never sent: its
        sending is paused, so a real worker sharing the database leaves them alone."""
        from careloop.reminders import services as reminder_services

        reminder_services.set_dispatch(
            self.world.admin, paused=True, reason="simulated organisation: the simulation is over"
        )

    def _finish(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        org_id = self.world.org.pk
        sendtime = self._module("sendtime")
        if sendtime is not None:
            out["sendtime"] = self._timed(
                "sendtime.report", lambda: sendtime.report(org_id, self.start, self.end)
            )
        if self.experiment is not None:
            from careloop.experiments import analysis

            self.experiment.refresh_from_db()
            out["experiment"] = {
                "code": self.experiment.code,
                "status": self.experiment.status,
                "stop_reason": self.experiment.stop_reason,
                "results": analysis.results(self.experiment, self.end),
            }
        risk = self._module("risk")
        if risk is not None:
            from careloop.kit.errors import CareLoopError

            try:
                from django.utils import translation

                with translation.override("en"):  # the summary is written in English
                    model = self._timed("risk.train", lambda: risk.train(org_id, seed=self.o.seed))
                out["risk"] = {"version": model.version, "card": model.card}
            except CareLoopError as exc:  # e.g. too little history: the summary says so
                out["risk"] = {"error": str(exc)}
        return out


def _open_slots(department_id: int, day: date) -> list[int]:
    from django.db.models import F

    from careloop.appointments import models as am

    return list(
        am.Slot.objects.filter(department_id=department_id, local_date__gte=day)
        .filter(booked__lt=F("capacity"), status=am.Slot.Status.OPEN)
        .order_by("local_date", "starts_at")
        .values_list("pk", flat=True)[:5]
    )
