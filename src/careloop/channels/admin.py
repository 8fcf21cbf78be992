"""Django admin for delivery channels: provider per channel and its settings, secrets masked.

Settings are edited as one field per key the provider's adapter reads (``CONFIG_KEYS``).
Secrets (``SECRET_KEYS``) are never sent back to the browser: the field is always empty, and
leaving it empty keeps the saved value. Every change is on the audit trail (key names only).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.accounts.actor import Actor
from careloop.accounts.admin import OrgScoped
from careloop.audit import services as audit
from careloop.channels import registry
from careloop.channels.models import KIND_CHOICES, ChannelConfig
from careloop.channels.port import ChannelError, ChannelKind

PREFIX = "setting_"
KNOWN = {name for names in registry.PROVIDERS.values() for name in names}
MAX_SETTING = 4000


def provider_choices() -> list[Any]:
    """Providers grouped by the channel they serve."""
    return [("", "---------")] + [
        (label, [(name, name) for name in registry.PROVIDERS[ChannelKind(kind)]])
        for kind, label in KIND_CHOICES
        if registry.PROVIDERS[ChannelKind(kind)]
    ]


class ChannelForm(forms.ModelForm):
    provider = forms.ChoiceField(label=gettext_lazy("provider"), choices=provider_choices)
    # Set per request by the admin: the provider whose settings are shown, and the organisation.
    provider_name = ""
    setting_keys: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()
    organisation_id: int | None = None

    class Meta:
        model = ChannelConfig
        fields = ("kind", "provider", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        saved = self._saved()
        for key in self.setting_keys:
            field = self.fields.get(PREFIX + key)
            if field is None:
                continue
            if key in self.secret_keys:
                field.help_text = (
                    _("Saved; never shown. Leave empty to keep it, type a new value to replace it.")
                    if saved.get(key)
                    else _("Secret; never shown again once saved.")
                )
            else:
                field.initial = saved.get(key, "")

    def _saved(self) -> dict[str, Any]:
        """The stored settings, when they belong to the provider being edited."""
        if self.instance.pk and self.instance.provider == self.provider_name:
            return self.instance.config
        return {}

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind, provider = data.get("kind"), data.get("provider")
        if kind and provider and provider not in registry.PROVIDERS[ChannelKind(kind)]:
            self.add_error("provider", _("This provider does not serve the chosen channel."))
            return data
        if kind and self.organisation_id is not None:
            taken = ChannelConfig.objects.filter(organisation_id=self.organisation_id, kind=kind)
            if self.instance.pk:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error("kind", _("This channel is set up already; change that one."))
                return data
        saved = self._saved() if provider == self.provider_name else {}
        config: dict[str, Any] = {}
        for key in self.setting_keys:
            value = str(data.get(PREFIX + key) or "")
            if key in self.secret_keys:
                value = value.strip()
                if not value and saved.get(key):
                    value = str(saved[key])
            else:
                value = value.strip()
            if value:
                config[key] = value
        if provider and provider == self.provider_name:
            try:
                registry.get_adapter(str(kind), str(provider), config)
            except ChannelError as exc:
                raise forms.ValidationError(
                    _("These settings cannot be used: %s") % exc.detail
                ) from exc
        self.new_config = config
        return data

    def save(self, commit: bool = True) -> Any:
        obj = super().save(commit=False)
        self.changed_settings = sorted(
            k
            for k in set(self._saved()) | set(getattr(self, "new_config", {}))
            if self._saved().get(k) != getattr(self, "new_config", {}).get(k)
        )
        obj.config = getattr(self, "new_config", {})
        if commit:
            obj.save()
        return obj


def _setting_field(key: str, secret: bool) -> forms.Field:
    if secret:
        widget: forms.Widget = (
            forms.Textarea(attrs={"rows": 3, "autocomplete": "off"})
            if key.endswith("private_key")
            else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        )
    else:
        widget = forms.TextInput(attrs={"size": 60})
    return forms.CharField(label=key, required=False, max_length=MAX_SETTING, widget=widget)


@admin.register(ChannelConfig)
class ChannelConfigAdmin(OrgScoped, admin.ModelAdmin):
    form = ChannelForm
    list_display = ("kind", "provider", "enabled", "updated_at")
    list_filter = ("kind", "enabled")

    def _provider(self, request: HttpRequest, obj: Any) -> str:
        chosen = request.POST.get("provider") or request.GET.get("provider") or ""
        if not chosen and obj is not None:
            chosen = obj.provider
        return chosen if chosen in KNOWN else ""

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        provider = self._provider(request, obj)
        keys = registry.config_keys(provider) if provider else ()
        secrets = registry.secret_keys(provider) if provider else ()
        attrs: dict[str, Any] = {PREFIX + k: _setting_field(k, k in secrets) for k in keys}
        attrs.update(
            provider_name=provider,
            setting_keys=tuple(keys),
            secret_keys=tuple(secrets),
            organisation_id=(
                obj.organisation_id
                if obj is not None
                else getattr(request.user, "organisation_id", None)
            ),
        )
        kw["form"] = type("ChannelForm", (ChannelForm,), attrs)
        return super().get_form(request, obj, change=change, **kw)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser or not obj.organisation_id:
            obj.organisation_id = getattr(request.user, "organisation_id", None)
        super().save_model(request, obj, form, change)
        audit.record(
            Actor.from_request(request, channel="admin"),
            "channel.update" if change else "channel.create",
            obj=obj,
            detail={
                "kind": obj.kind,
                "provider": obj.provider,
                "enabled": obj.enabled,
                "fields": [f for f in form.changed_data if not f.startswith(PREFIX)],
                "settings_changed": getattr(form, "changed_settings", []),
            },
        )

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: Any = None
    ) -> HttpResponse:
        # The provider's own settings are shown once the provider is known: continue there.
        if not registry.config_keys(obj.provider) or "_addanother" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        messages.info(request, _("Now fill in the provider's settings."))
        return HttpResponseRedirect(reverse("admin:channels_channelconfig_change", args=[obj.pk]))
