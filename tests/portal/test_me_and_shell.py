"""Me (who, language, elder mode, links), the web app manifest and the service worker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.template import Context, Template
from django.test import Client

from careloop.audit.models import AuditEvent
from tests.portal.client import portal_client

pytestmark = pytest.mark.django_db


class TestMe:
    def test_who_i_am_with_a_masked_phone(self, make_patient: Any) -> None:
        p = make_patient(name="赵六", phones=["13811112222"])
        page = portal_client(p).get("/portal/me")
        html = page.content.decode()
        assert page.status_code == 200
        assert "赵六" in html and "138****2222" in html and "13811112222" not in html
        assert page["Cache-Control"] == "no-store"
        assert AuditEvent.objects.filter(action="portal.me.view", patient_id=p.pk).exists()

    def test_elder_mode_applies_to_every_page(self, make_patient: Any) -> None:
        client = portal_client(make_patient())
        assert b'class="elder"' not in client.get("/portal/me").content
        answer = client.post("/portal/me/elder", {"elder": "1"})
        assert answer.status_code == 302 and answer["Location"] == "/portal/me"
        assert client.cookies["careloop_elder"].value == "1"
        assert b'class="elder"' in client.get("/portal/me").content
        visitor = Client()
        visitor.cookies["careloop_elder"] = "1"
        assert b'class="elder"' in visitor.get("/portal/sign-in?org=test").content
        client.post("/portal/me/elder", {"elder": "0"})
        assert b'class="elder"' not in client.get("/portal/me").content

    def test_language_switch_posts_to_the_language_view(self, make_patient: Any) -> None:
        client = portal_client(make_patient(), language="zh-hans")
        html = client.get("/portal/me").content.decode()
        assert 'action="/language/"' in html and 'name="next" value="/portal/me"' in html
        answer = client.post("/language/", {"language": "en", "next": "/portal/me"})
        assert answer["Location"] == "/portal/me"
        assert "Large text" in client.get("/portal/me").content.decode()

    def test_links_only_to_pages_that_exist(self, make_patient: Any) -> None:
        html = portal_client(make_patient()).get("/portal/me").content.decode()
        template = Template('{% load portal_links %}{% portal_link "portal:nowhere" "X" %}')
        assert template.render(Context({})) == ""
        shown = Template('{% load portal_links %}{% portal_link "portal:me" "Me" %}')
        assert 'href="/portal/me"' in shown.render(Context({}))
        assert 'data-testid="link-portal-plan"' in html  # created by the Today feature

    def test_needs_a_portal_sign_in(self, world: Any) -> None:
        answer = Client().get("/portal/me")
        assert answer.status_code == 302
        assert answer["Location"].startswith("/portal/sign-in?next=/portal/me")


class TestInstallable:
    def test_manifest(self, world: Any) -> None:
        answer = Client().get("/portal/manifest.webmanifest")
        assert answer.status_code == 200
        assert answer["Content-Type"].startswith("application/manifest+json")
        data = json.loads(answer.content)
        assert data["start_url"] == "/portal/" and data["display"] == "standalone"
        assert data["theme_color"] and data["name"] == "CareLoop"
        assert any(icon["type"] == "image/svg+xml" for icon in data["icons"])

    def test_service_worker(self, world: Any) -> None:
        answer = Client().get("/portal/sw.js")
        assert answer.status_code == 200
        assert answer["Content-Type"].startswith("application/javascript")
        assert answer["Service-Worker-Allowed"] == "/portal/"
        body = answer.content.decode()
        assert "portal/portal.css" in body and 'var TODAY = "/portal/"' in body
        assert "&quot;" not in body  # the JSON is not HTML-escaped
        assert 'request.method !== "GET"' in body and "url.origin !== self.location.origin" in body

    def test_icons_are_served(self, world: Any) -> None:
        data = json.loads(Client().get("/portal/manifest.webmanifest").content)
        for icon in data["icons"]:
            from django.contrib.staticfiles import finders

            name = icon["src"].split("/static/", 1)[1]
            assert finders.find(name), icon["src"]
