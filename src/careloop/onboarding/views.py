"""Staff pages of patient-list onboarding: upload, mapping and dry run, confirmed run with its
progress (refreshed by htmx), and the per-row report as CSV or XLSX."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.accounts.actor import Actor
from careloop.audit import services as audit
from careloop.kit import exports
from careloop.kit.errors import ValidationFailed
from careloop.kit.pagination import to_int
from careloop.onboarding import reading, services
from careloop.onboarding.forms import MappingForm, UploadForm
from careloop.onboarding.models import PatientListJob
from careloop.web.decorators import is_htmx, staff_page

Status = PatientListJob.Status
RESULTS_PER_PAGE = 100


def _percent(job: PatientListJob) -> int:
    if job.status == Status.DONE:
        return 100
    if not job.total_rows:
        return 0
    return min(100, int(job.processed * 100 / job.total_rows))


def _add_errors(form: Any, exc: ValidationFailed) -> None:
    for name, errors in (exc.details or {}).items():
        for error in errors:
            form.add_error(name if name in form.fields else None, str(error))


def _list(request: HttpRequest, actor: Actor, form: UploadForm, status: int = 200) -> HttpResponse:
    jobs = list(services.visible_jobs(actor).select_related("created_by")[:50])
    audit.record(actor, "onboarding.list", detail={"lists": [j.pk for j in jobs]})
    return render(request, "onboarding/list.html", {"form": form, "jobs": jobs}, status=status)


@require_GET
@staff_page
def job_list(request: HttpRequest, actor: Actor) -> HttpResponse:
    return _list(request, actor, UploadForm(actor=actor))


@require_POST
@staff_page
def upload(request: HttpRequest, actor: Actor) -> HttpResponse:
    services.require(actor)
    form = UploadForm(request.POST, request.FILES, actor=actor)
    if form.is_valid():
        dept = form.cleaned_data["department"]
        try:
            job = services.start(
                actor, upload=form.cleaned_data["file"], department_id=dept.pk if dept else None
            )
        except ValidationFailed as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Check the columns, then run the dry run."))
            return redirect("onboarding:detail", job_id=job.pk)
    return _list(request, actor, form, status=422)


def _detail(
    request: HttpRequest, actor: Actor, job: PatientListJob, form: MappingForm | None = None,
    status: int = 200,
) -> HttpResponse:  # fmt: skip
    editable = job.status in (Status.UPLOADED, Status.CHECKED)
    if form is None and editable:
        form = MappingForm(
            headers=job.headers,
            initial={f"col_{k}": v for k, v in (job.mapping or {}).items()},
        )
    results = list(job.results or [])
    show = request.GET.get("show", "")
    if show == "problems":
        results = [r for r in results if r["outcome"] == "refused" or r.get("messages")]
    pages = max(1, -(-len(results) // RESULTS_PER_PAGE))
    page = to_int(request.GET.get("page"), 1, low=1, high=pages)
    shown = results[(page - 1) * RESULTS_PER_PAGE : page * RESULTS_PER_PAGE]
    context = {
        "job": job,
        "form": form,
        "editable": editable,
        "finished": job.status in (Status.DONE, Status.FAILED),
        "running": job.status in (Status.QUEUED, Status.RUNNING),
        "percent": _percent(job),
        "results": [
            {
                **r,
                "label": services.OUTCOME_LABELS.get(r["outcome"], r["outcome"]),
                "reasons": [
                    {
                        "field": reading.FIELDS.get(m.get("field", ""), ""),
                        "reason": m.get("reason", ""),
                    }
                    for m in r.get("messages") or []
                ],
            }
            for r in shown
        ],  # fmt: skip
        "page": page,
        "pages": pages,
        "show": show,
        "mapped": [
            (job.headers[int(k)], reading.FIELDS.get(v, v))
            for k, v in job.mapping.items()
            if int(k) < len(job.headers)
        ],  # fmt: skip
    }
    template = "onboarding/_progress.html" if is_htmx(request) else "onboarding/detail.html"
    return render(request, template, context, status=status)


@require_GET
@staff_page
def detail(request: HttpRequest, actor: Actor, job_id: int) -> HttpResponse:
    job = services.get_job(actor, job_id, audit_read=not is_htmx(request))
    return _detail(request, actor, job)


@require_http_methods(["POST"])
@staff_page
def mapping(request: HttpRequest, actor: Actor, job_id: int) -> HttpResponse:
    """Keep the mapping and run the dry run at once."""
    job = services.get_job(actor, job_id, audit_read=False)
    form = MappingForm(request.POST, headers=job.headers)
    if form.is_valid():
        try:
            services.set_mapping(actor, job, form.mapping())
            services.dry_run(actor, job)
        except ValidationFailed as exc:
            _add_errors(form, exc)
        else:
            return redirect("onboarding:detail", job_id=job.pk)
    return _detail(request, actor, job, form, status=422)


@require_POST
@staff_page
def run(request: HttpRequest, actor: Actor, job_id: int) -> HttpResponse:
    job = services.get_job(actor, job_id, audit_read=False)
    if request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the box to confirm the run."))
        return redirect("onboarding:detail", job_id=job.pk)
    try:
        services.start_run(actor, job)
    except ValidationFailed as exc:
        for errors in exc.details.values():
            for error in errors:
                messages.error(request, str(error))
    else:
        messages.success(request, _("The list is being run; the page shows its progress."))
    return redirect("onboarding:detail", job_id=job.pk)


@require_GET
@staff_page
def report(request: HttpRequest, actor: Actor, job_id: int, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "xlsx"):
        raise Http404()
    job = services.get_job(actor, job_id, audit_read=False)
    header, rows = services.report_table(job)
    audit.record(actor, "onboarding.export", obj=job, detail={"format": fmt, "rows": len(rows)})
    return exports.download(f"patient-list-{job.pk}-report", fmt, header, rows)
