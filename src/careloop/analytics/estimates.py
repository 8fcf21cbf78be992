"""The organisation administrators' page for the estimated patients in the service area (the
denominator of 健康管理率): list, set (create or change) and delete, each write audited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from careloop.accounts.actor import Actor
from careloop.accounts.roles import Action
from careloop.analytics import models as am
from careloop.audit import services as audit
from careloop.kit.errors import NotFound, ValidationFailed
from careloop.patients.selectors import require
from careloop.web.decorators import staff_page


class EstimateForm(forms.Form):
    condition = forms.ChoiceField(label=_("condition"), choices=am.AreaEstimate.Condition.choices)
    year = forms.IntegerField(label=_("year"), min_value=2000, max_value=2100)
    estimated_patients = forms.IntegerField(
        label=_("estimated patients in the area"), min_value=1, max_value=100_000_000
    )


def estimates_of(actor: Actor) -> list[am.AreaEstimate]:
    require(actor, Action.ORG_MANAGE)
    return list(am.AreaEstimate.objects.filter(organisation_id=actor.organisation_id or 0))


def save_estimate(actor: Actor, data: dict[str, Any]) -> am.AreaEstimate:
    """Set the estimate of one condition and year (creating or replacing it)."""
    require(actor, Action.ORG_MANAGE)
    form = EstimateForm(data)
    if not form.is_valid():
        raise ValidationFailed(
            details={k: [str(e) for e in errs] for k, errs in form.errors.items()}
        )
    clean = form.cleaned_data
    with transaction.atomic():
        row, created = am.AreaEstimate.objects.update_or_create(
            organisation_id=actor.organisation_id or 0,
            condition=clean["condition"],
            year=clean["year"],
            defaults={"estimated_patients": clean["estimated_patients"], "updated_by": actor.user},
        )
        audit.record(
            actor,
            "analytics.estimate.save",
            obj=row,
            detail={
                "condition": row.condition,
                "year": row.year,
                "estimated_patients": row.estimated_patients,
                "created": created,
            },
        )
    return row


def delete_estimate(actor: Actor, estimate_id: int) -> None:
    require(actor, Action.ORG_MANAGE)
    with transaction.atomic():
        row = am.AreaEstimate.objects.filter(
            organisation_id=actor.organisation_id or 0, pk=estimate_id
        ).first()
        if row is None:
            raise NotFound()
        audit.record(
            actor,
            "analytics.estimate.delete",
            obj=row,
            detail={"condition": row.condition, "year": row.year},
        )
        row.delete()


@staff_page
@require_http_methods(["GET", "POST"])
def estimates(request: HttpRequest, actor: Actor) -> HttpResponse:
    rows = estimates_of(actor)
    form = EstimateForm()
    status = 200
    if request.method == "POST":
        try:
            save_estimate(actor, request.POST.dict())
        except ValidationFailed:
            form = EstimateForm(request.POST)
            form.is_valid()  # the same errors, shown next to the fields
            status = 422
        else:
            messages.success(request, _("Estimate saved."))
            return redirect("analytics_estimates:list")
    return render(
        request,
        "analytics/estimates.html",
        {"rows": rows, "form": form, "title": _("Estimated patients in the area")},
        status=status,
    )


@staff_page
@require_http_methods(["POST"])
def estimate_delete(request: HttpRequest, actor: Actor, estimate_id: int) -> HttpResponse:
    delete_estimate(actor, estimate_id)
    messages.success(request, _("Estimate deleted."))
    return redirect("analytics_estimates:list")
