"""Add Patient.registered_on and fill it for existing patients.

Each existing patient is registered on the calendar day of its `created_at` in its
organisation's time zone (the zone staff work in; Asia/Shanghai when the zone is unknown).
The fill is one UPDATE per organisation over all its rows, never a loop over patients.
"""

from zoneinfo import ZoneInfo

from django.db import migrations, models
from django.db.models.functions import TruncDate


def fill_registered_on(apps, schema_editor):
    Organisation = apps.get_model("accounts", "Organisation")
    Patient = apps.get_model("patients", "Patient")
    db = schema_editor.connection.alias
    for org_id, zone_name in Organisation.objects.using(db).values_list("pk", "time_zone"):
        try:
            zone = ZoneInfo(zone_name)
        except (ValueError, KeyError):
            zone = ZoneInfo("Asia/Shanghai")
        Patient.objects.using(db).filter(organisation_id=org_id, registered_on__isnull=True).update(
            registered_on=TruncDate("created_at", tzinfo=zone)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("patients", "0008_medication_as_directed"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="registered_on",
            field=models.DateField(blank=True, null=True, verbose_name="registered on"),
        ),
        migrations.RunPython(fill_registered_on, migrations.RunPython.noop),
    ]
