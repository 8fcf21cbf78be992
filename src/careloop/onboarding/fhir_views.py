"""Staff pages of the FHIR file import (organisation admins): upload, progress, report."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from careloop.accounts.actor import Actor
from careloop.accounts.models import Department
from careloop.audit import services as audit
from careloop.kit.errors import ValidationFailed
from careloop.onboarding import fhir_jobs
from careloop.onboarding.models import FhirImportJob
from careloop.web.decorators import is_htmx, staff_page

Status = FhirImportJob.Status


class FhirUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("FHIR file"),
        help_text=gettext_lazy(
            "A transaction or batch Bundle (.json) or an NDJSON file (.ndjson), one "
            "resource per line."
        ),
    )
    department = forms.ModelChoiceField(
        label=gettext_lazy("Department new patients join"),
        queryset=Department.objects.none(),
        required=False,
    )

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        qs = Department.objects.filter(organisation_id=actor.organisation_id or 0)
        self.fields["department"].queryset = qs.order_by("code")  # type: ignore[attr-defined]
        self.fields["file"].widget.attrs.update(
            {"data-testid": "fhir-file", "accept": ".json,.ndjson,.jsonl,application/json"}
        )


def _list(request: HttpRequest, actor: Actor, form: FhirUploadForm, status: int = 200) -> Any:
    jobs = list(fhir_jobs.visible_jobs(actor).select_related("created_by")[:50])
    audit.record(actor, "onboarding.fhir.list", detail={"imports": [j.pk for j in jobs]})
    context = {"form": form, "jobs": jobs}
    return render(request, "onboarding/fhir_list.html", context, status=status)


@require_GET
@staff_page
def fhir_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    fhir_jobs.require(actor)
    return _list(request, actor, FhirUploadForm(actor=actor))


@require_POST
@staff_page
def fhir_upload(request: HttpRequest, actor: Actor) -> HttpResponse:
    fhir_jobs.require(actor)
    form = FhirUploadForm(request.POST, request.FILES, actor=actor)
    if form.is_valid():
        dept = form.cleaned_data["department"]
        try:
            job = fhir_jobs.start(
                actor, upload=form.cleaned_data["file"], department_id=dept.pk if dept else None
            )
        except ValidationFailed as exc:
            for name, errors in (exc.details or {}).items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, str(error))
        else:
            messages.success(request, _("The file is being imported; this page shows progress."))
            return redirect("fhirimport:detail", job_id=job.pk)
    return _list(request, actor, form, status=422)


@require_GET
@staff_page
def fhir_detail(request: HttpRequest, actor: Actor, job_id: int) -> HttpResponse:
    job = fhir_jobs.get_job(actor, job_id, audit_read=not is_htmx(request))
    running = job.status in (Status.QUEUED, Status.RUNNING)
    percent = 100 if job.status == Status.DONE else int(job.processed * 100 / max(job.total, 1))
    types = []
    for name, figures in sorted((job.report.get("types") or {}).items()):
        reasons = [*figures.get("skip_reasons", {}).items(), *figures.get("refusals", {}).items()]
        types.append({"name": name, **figures, "reasons": reasons})
    context = {"job": job, "running": running, "percent": min(percent, 100), "types": types}
    partial = is_htmx(request)
    template = "onboarding/_fhir_progress.html" if partial else "onboarding/fhir_detail.html"
    return render(request, template, context)
