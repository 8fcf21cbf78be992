"""Builds a fault test's clinic inside its scratch database; runs as its own process.

    python -m tests.fault.scenario --config '{...}' --patients 600 --per-patient 5

The environment names the scratch database (CARELOOP_DATABASE_URL, CARELOOP_VAR_DIR). Prints
one JSON line: the organisation, the due occurrences' ids and each patient's phone.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault.scenario")
    parser.add_argument("--config", required=True, help="SMS provider settings (JSON)")
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--per-patient", type=int, default=1)
    parser.add_argument(
        "--enrolled",
        action="store_true",
        help="dose reminders of a hypertension enrolment (its escalation ladder applies); "
        "otherwise one-off reminders sent by SMS only, with no escalation",
    )
    args = parser.parse_args(argv)

    import django

    django.setup()

    from careloop.bench import reminders as bench
    from careloop.careplans import domain
    from careloop.careplans import models as cm
    from careloop.kit.clock import utc_now
    from careloop.patients import models as pm
    from careloop.reminders import links
    from careloop.reminders import models as rm
    from careloop.reminders import services as reminder_services

    now = utc_now()
    clinic = bench.set_up_organisation(json.loads(args.config), code="fault", daily_cap=50)
    phones = [f"139{i:08d}" for i in range(args.patients)]
    patient_ids = bench.add_patients(clinic, args.patients, seed=7, today=now.date(), phones=phones)
    enrolment_of: dict[int, int] = {}
    if args.enrolled:
        bench.enrol_all(clinic, patient_ids, today=now.date())
        # Planned ahead already: the worker's top-up has nothing to add.
        cm.Enrolment.objects.filter(organisation_id=clinic.org_id).update(
            materialised_until=now + timedelta(days=14)
        )
        enrolment_of = dict(
            cm.Enrolment.objects.filter(organisation_id=clinic.org_id).values_list(
                "patient_id", "pk"
            )
        )
    zone_of = dict(pm.Patient.objects.filter(pk__in=patient_ids).values_list("pk", "time_zone"))
    due = now - timedelta(seconds=5)
    values = []
    for n, pk in enumerate(patient_ids):
        for k in range(args.per_patient):
            if args.enrolled:
                key = f"e{enrolment_of[pk]}:medication:fault{k}"
                extra = {"enrolment_id": enrolment_of[pk], "activity_code": "medication"}
                payload = {"title": "按时服药", "title_en": "Take your medicine"}
            else:
                key = f"fault:{n}:{k}"
                extra = {}
                payload = {"title": "按时服药", "channels": ["sms"], "escalation": []}
            values.append(
                {
                    "organisation_id": clinic.org_id,
                    "patient_id": pk,
                    "kind": "medication",
                    "source_key": key,
                    "local_due": f"{domain.local_of(due, domain.zone(zone_of[pk])):%Y-%m-%dT%H:%M}",
                    "time_zone": zone_of[pk],
                    "due_at": due,
                    "wake_at": due,
                    "link_digest": links.digest(links.token_for(key)),
                    "payload": payload,
                    **extra,
                }
            )
    reminder_services.insert_occurrences(values)
    ids = list(
        rm.Occurrence.objects.filter(organisation_id=clinic.org_id)
        .order_by("id")
        .values_list("id", flat=True)
    )
    phone_of = dict(zip(patient_ids, phones, strict=True))
    print(
        json.dumps(
            {
                "organisation": clinic.org_id,
                "occurrences": ids,
                "phones": {
                    str(o): phone_of[p]
                    for o, p in rm.Occurrence.objects.filter(pk__in=ids).values_list(
                        "pk", "patient_id"
                    )
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
