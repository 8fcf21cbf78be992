"""Load the shipped terminology (ICD-10 categories and common SNOMED CT concepts)."""

import csv
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data" / "concepts.csv"


def load(apps, schema_editor):
    Concept = apps.get_model("patients", "Concept")
    with DATA.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    existing = set(Concept.objects.values_list("system", "code"))
    Concept.objects.bulk_create(
        [Concept(**row) for row in rows if (row["system"], row["code"]) not in existing]
    )


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
