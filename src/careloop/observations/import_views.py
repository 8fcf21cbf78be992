"""Staff pages of reading imports: the upload form with past imports, one import's progress
(refreshed by htmx until it is done) and its line report, and the report as CSV."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.audit import services as audit
from careloop.kit.csvsafe import safe_cell
from careloop.kit.errors import ValidationFailed
from careloop.observations import jobs
from careloop.observations import models as om
from careloop.patients import selectors as patient_selectors
from careloop.web.decorators import is_htmx, staff_page

FINISHED = (om.ImportJob.Status.DONE, om.ImportJob.Status.FAILED)
FORMAT_HELP = {
    "csv": gettext_lazy(
        "One reading per line: patient, code, value or systolic/diastolic, unit, effective, …"
    ),
    "device_csv": gettext_lazy(
        "A device export: device_id, patient_id or record_number, measured_at, type, value, unit."
    ),
    "apple_health": gettext_lazy(
        "export.xml or export.zip from the Health app on the patient's iPhone."
    ),
    "ndjson": gettext_lazy("One JSON object per line, as the JSON API takes readings."),
}


class UploadForm(forms.Form):
    format = forms.ChoiceField(
        label=gettext_lazy("Format"), choices=om.ImportJob.Format.choices, initial="csv"
    )
    file = forms.FileField(label=gettext_lazy("File"))
    patient = forms.CharField(
        label=gettext_lazy("Patient (for a file of one patient)"),
        required=False,
        max_length=40,
        help_text=gettext_lazy(
            "CareLoop number or record number. Needed for Apple Health; leave empty when the "
            "file names the patient on each line."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["data-testid"] = "import-file"
        self.fields["format"].widget.attrs["data-testid"] = "import-format"
        self.fields["patient"].widget.attrs.update(
            {"data-testid": "import-patient", "autocomplete": "off"}
        )
        self.fields["file"].help_text = _("At most %(mb)d MB.") % {
            "mb": jobs.max_bytes() // (1024 * 1024)
        }


# The fields a problem names, as staff read them.
FIELD_LABELS = {
    "": "—",
    "patient": gettext_lazy("Patient"),
    "code": gettext_lazy("Code"),
    "value": gettext_lazy("Value"),
    "systolic": gettext_lazy("Systolic"),
    "diastolic": gettext_lazy("Diastolic"),
    "unit": gettext_lazy("Unit"),
    "effective": gettext_lazy("Time"),
    "time_zone": gettext_lazy("Time zone"),
    "source": gettext_lazy("Source"),
    "device": gettext_lazy("Device"),
    "context": gettext_lazy("Context"),
}


def _percent(job: om.ImportJob) -> int:
    if job.status == om.ImportJob.Status.DONE:
        return 100
    if not job.size:
        return 0
    return min(100, int(job.bytes_read * 100 / job.size))


def _list_page(
    request: HttpRequest, actor: Actor, form: UploadForm, status: int = 200
) -> HttpResponse:
    page = jobs.import_page(actor, request.GET.get("page"))
    return render(
        request,
        "observations/imports/list.html",
        {
            "form": form,
            "can_upload": actor.can(Action.CLINICAL_WRITE),
            "page": page,
            "rows": [{"job": job, "percent": _percent(job)} for job in page.items],
            "format_help": [
                (value, label, FORMAT_HELP[value]) for value, label in om.ImportJob.Format.choices
            ],
        },
        status=status,
    )


@require_GET
@staff_page
def import_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = UploadForm(initial={"patient": request.GET.get("patient", "")[:40]})
    return _list_page(request, actor, form)


@require_POST
@staff_page
def upload(request: HttpRequest, actor: Actor) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            job = jobs.start_import(
                actor,
                upload=form.cleaned_data["file"],
                fmt=form.cleaned_data["format"],
                patient_ref=form.cleaned_data["patient"] or "",
            )
        except ValidationFailed as exc:
            for name, errors in exc.details.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, str(error))
        else:
            messages.success(
                request,
                _("%(name)s is uploaded; its readings are being read.") % {"name": job.file_name},
            )
            return redirect("imports:detail", import_id=job.pk)
    else:
        ref = str(request.POST.get("patient", "")).strip().removeprefix("#")
        patient_selectors.require(
            actor,
            Action.CLINICAL_WRITE,
            patient_id=int(ref) if ref.isdigit() and len(ref) < 16 else None,
        )
    return _list_page(request, actor, form, status=422)


@require_GET
@staff_page
def import_detail(request: HttpRequest, actor: Actor, import_id: int) -> HttpResponse:
    polling = is_htmx(request)
    # A poll while the file is read shows figures only; the report it ends with is audited.
    job = jobs.get_import(actor, import_id, audit_read=not polling)
    finished = job.status in FINISHED
    if polling and finished:
        audit.record(actor, "observation_import.read", patient_id=job.patient_id, obj=job)
    problems = jobs.problems_page(job, request.GET.get("page")) if finished else None
    context = {
        "job": job,
        "finished": finished,
        "percent": _percent(job),
        "problems": problems,
        "problem_rows": [
            {**p, "label": FIELD_LABELS.get(p.get("field", ""), p.get("field", ""))}
            for p in (problems.items if problems else [])
        ],
    }
    if is_htmx(request):
        return render(request, "observations/imports/_progress.html", context)
    return render(request, "observations/imports/detail.html", context)


@require_GET
@staff_page
def problems_csv(request: HttpRequest, actor: Actor, import_id: int) -> HttpResponse:
    job = jobs.get_import(actor, import_id)
    audit.record(
        actor,
        "observation_import.export",
        patient_id=job.patient_id,
        obj=job,
        detail={"problems": len(job.problems or [])},
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-problems.csv"'
    response.write("\ufeff")  # so that Excel reads the file as UTF-8
    writer = csv.writer(response)
    writer.writerow([_("Line"), _("Field"), _("Reason")])
    for problem in job.problems or []:
        writer.writerow(
            [
                safe_cell(problem.get("line")),
                safe_cell(problem.get("field")),
                safe_cell(problem.get("reason")),
            ]
        )
    return response
