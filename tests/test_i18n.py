"""The Chinese catalogue is complete and compiled, and pages and the API speak both languages."""

from __future__ import annotations

import ast
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

import careloop
from careloop.patients import models as m
from tests.conftest import PASSWORD

PACKAGE = Path(careloop.__file__).resolve().parent
MESSAGES = PACKAGE / "locale" / "zh_Hans" / "LC_MESSAGES"
PO = MESSAGES / "django.po"
MO = MESSAGES / "django.mo"

# --- reading the catalogue files (no third-party parser) -------------------------------------


def _parse_po(path: Path) -> list[dict[str, Any]]:
    """Entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (list), flags, obsolete."""
    entries: list[dict[str, Any]] = []
    entry: dict[str, Any] = {}
    key: str | None = None

    def finish() -> None:
        nonlocal entry, key
        if "msgid" in entry:
            entries.append(entry)
        entry, key = {}, None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            entry["obsolete"] = True
            continue
        if line.startswith("#,"):
            entry.setdefault("flags", set()).update(
                f.strip() for f in line[2:].split(",") if f.strip()
            )
            continue
        if line.startswith("#"):
            continue
        match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line)
        if match:
            if match.group(1) == "msgid" and "msgid" in entry:
                finish()
            key = match.group(1)
            text = ast.literal_eval(match.group(2))
        else:
            assert key is not None and line.startswith('"'), f"unreadable line: {raw!r}"
            text = ast.literal_eval(line)
        if key.startswith("msgstr"):
            index = int(key[7:-1]) if "[" in key else 0
            strs = entry.setdefault("msgstr", {})
            strs[index] = strs.get(index, "") + text
        else:
            entry[key] = entry.get(key, "") + text
    finish()
    for e in entries:
        e["msgstr"] = [e.get("msgstr", {}).get(i, "") for i in range(len(e.get("msgstr", {})))]
        e.setdefault("flags", set())
    return entries


def _po_as_mo_catalogue(entries: list[dict[str, Any]]) -> dict[str, str]:
    """What msgfmt would write for these entries (keys and values as in a .mo file)."""
    catalogue = {}
    for e in entries:
        if e.get("obsolete") or "fuzzy" in e["flags"] and e["msgid"]:
            continue
        key = e["msgid"]
        if "msgid_plural" in e:
            key += "\0" + e["msgid_plural"]
        if "msgctxt" in e:
            key = e["msgctxt"] + "\x04" + key
        catalogue[key] = "\0".join(e["msgstr"])
    return catalogue


def _read_mo(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">"
    _revision, count, originals, translations = struct.unpack(order + "4I", data[4:20])
    catalogue = {}
    for i in range(count):
        olen, ooff = struct.unpack(order + "2I", data[originals + 8 * i : originals + 8 * i + 8])
        tlen, toff = struct.unpack(
            order + "2I", data[translations + 8 * i : translations + 8 * i + 8]
        )
        catalogue[data[ooff : ooff + olen].decode()] = data[toff : toff + tlen].decode()
    return catalogue


def _placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\([A-Za-z_]+\)[sdif]|%[sdif]|\{\{?\s*\w+\s*\}?\}", text))


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return _parse_po(PO)


# --- the catalogue --------------------------------------------------------------------------


class TestCatalogue:
    def test_header_declares_simplified_chinese_utf8_one_plural_form(self, entries):
        header = next(e for e in entries if e["msgid"] == "")
        fields = dict(
            line.split(": ", 1) for line in header["msgstr"][0].splitlines() if ": " in line
        )
        assert fields["Language"] == "zh_Hans"
        assert fields["Content-Type"] == "text/plain; charset=UTF-8"
        assert fields["Plural-Forms"] == "nplurals=1; plural=0;"
        assert "fuzzy" not in header["flags"]

    def test_every_message_is_translated_and_none_is_fuzzy(self, entries):
        messages = [e for e in entries if e["msgid"] and not e.get("obsolete")]
        assert len(messages) > 300
        untranslated = [e["msgid"] for e in messages if not all(s.strip() for s in e["msgstr"])]
        fuzzy = [e["msgid"] for e in messages if "fuzzy" in e["flags"]]
        assert untranslated == []
        assert fuzzy == []
        assert [e["msgid"] for e in entries if e.get("obsolete")] == []

    def test_plural_messages_have_exactly_one_form(self, entries):
        plurals = [e for e in entries if "msgid_plural" in e]
        assert plurals, "the templates use plural messages"
        assert [e["msgid"] for e in plurals if len(e["msgstr"]) != 1] == []

    def test_translations_keep_every_placeholder(self, entries):
        broken = []
        for e in entries:
            if not e["msgid"]:
                continue
            wanted = _placeholders(e["msgid"])
            if "msgid_plural" in e:
                wanted = sorted(set(wanted) | set(_placeholders(e["msgid_plural"])))
                got = sorted(set(_placeholders(e["msgstr"][0])))
            else:
                got = _placeholders(e["msgstr"][0])
            if got != wanted:
                broken.append((e["msgid"], e["msgstr"]))
        assert broken == []

    def test_chinese_translations_are_chinese(self, entries):
        # Names, codes and formats may stay Latin; everything else must contain Chinese.
        latin_ok = {"", "CareLoop", "ECG"}
        latin = [
            e["msgid"]
            for e in entries
            if e["msgid"] not in latin_ok and not re.search(r"[\u4e00-\u9fff]", e["msgstr"][0])
        ]
        assert latin == []

    def test_role_and_frequency_labels_follow_hospital_usage(self, entries):
        by_id = {e["msgid"]: e["msgstr"][0] for e in entries}
        assert by_id["Organisation admin"] == "机构管理员"
        assert by_id["Department head"] == "科室主任"
        assert by_id["Doctor"] == "医生"
        assert by_id["Nurse / care coordinator"] == "护士/随访专员"
        assert by_id["Auditor"] == "审计员"
        with translation.override("en"):
            frequencies = [str(label) for _value, label in m.Frequency.choices]
        for label in frequencies:
            abbreviation = label.split(" — ")[0]
            assert by_id[label].startswith(abbreviation + " — "), by_id[label]

    def test_compiled_catalogue_matches_the_po_file(self, entries):
        compiled, source = _read_mo(MO), _po_as_mo_catalogue(entries)
        # msgfmt leaves the POT-Creation-Date line out of the compiled header.
        for catalogue in (compiled, source):
            catalogue[""] = re.sub(r"POT-Creation-Date: .*\n", "", catalogue[""])
        assert compiled == source, (
            "django.mo is stale: run `django-admin compilemessages` in src/careloop"
        )

    @pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext is not installed")
    def test_msgfmt_accepts_the_po_file(self, tmp_path):
        out = tmp_path / "check.mo"
        result = subprocess.run(  # noqa: S603 - fixed arguments
            ["msgfmt", "--check", "-o", str(out), str(PO)],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert _read_mo(out) == _read_mo(MO)

    @pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext is not installed")
    def test_every_marked_string_in_the_code_is_in_the_catalogue(
        self, entries, tmp_path, settings, monkeypatch
    ):
        """Re-extract from a copy of the package: a new string nobody translated fails here."""
        copy = tmp_path / "careloop"
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        settings.LOCALE_PATHS = [copy / "locale"]
        monkeypatch.chdir(copy)
        call_command("makemessages", locale=["zh_Hans"], no_obsolete=True, verbosity=0)
        extracted = {
            (e.get("msgctxt"), e["msgid"], e.get("msgid_plural"))
            for e in _parse_po(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
        }
        ours = {(e.get("msgctxt"), e["msgid"], e.get("msgid_plural")) for e in entries}
        hint = "run makemessages -l zh_Hans in src/careloop, translate, then compilemessages"
        assert [e[1] for e in sorted(extracted - ours, key=str)] == [], hint
        assert [e[1] for e in sorted(ours - extracted, key=str)] == [], hint


class TestRuntimeCatalogue:
    def test_django_uses_the_chinese_catalogue(self):
        assert settings.LANGUAGE_CODE == "zh-hans"
        with translation.override("zh-hans"):
            assert translation.gettext("Please correct the errors below.") == "请修正以下错误。"
            assert str(m.Frequency.BID.label) == "bid — 每日两次"
        with translation.override("en"):
            assert str(m.Frequency.BID.label) == "bid — twice a day"


# --- pages ----------------------------------------------------------------------------------


def _sign_in(client: Any, username: str) -> None:
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302


def _switch(client: Any, language: str, next_url: str = "/") -> Any:
    return client.post(reverse("language"), {"language": language, "next": next_url})


@pytest.mark.django_db
class TestPages:
    def test_login_page_is_chinese_by_default(self, client):
        body = client.get(reverse("login")).content.decode()
        assert "<title>登录 · CareLoop</title>" in body
        assert "登录 CareLoop" in body
        assert "用户名" in body and "密码" in body
        assert 'lang="zh-CN"' in body
        assert "Sign in to CareLoop" not in body

    def test_language_switch_turns_the_login_page_english_and_back(self, client):
        response = _switch(client, "en", reverse("login"))
        assert response.status_code == 302
        body = client.get(reverse("login")).content.decode()
        assert "<title>Sign in · CareLoop</title>" in body
        assert "Sign in to CareLoop" in body and "Username" in body
        assert "登录 CareLoop" not in body
        _switch(client, "zh-hans", reverse("login"))
        assert "登录 CareLoop" in client.get(reverse("login")).content.decode()

    def test_failed_sign_in_explains_in_chinese(self, client, world):
        response = client.post(
            reverse("login"), {"username": "nurse.cardiology", "password": "wrong-password"}
        )
        assert response.status_code == 401
        assert "用户名或密码错误。" in response.content.decode()

    def test_patient_list_in_chinese_then_english(self, client, world, make_patient):
        make_patient(name="李四")
        _sign_in(client, "nurse.cardiology")
        body = client.get(reverse("patients:list")).content.decode()
        assert "<h1>患者</h1>" in body
        for heading in ("姓名", "性别", "年龄", "电话", "病案号", "登记患者", "共 1 位患者"):
            assert heading in body, heading
        assert "护士/随访专员" in body  # the role under the user's name
        assert "Register a patient" not in body

        _switch(client, "en", reverse("patients:list"))
        body = client.get(reverse("patients:list")).content.decode()
        assert "<h1>Patients</h1>" in body
        for heading in (
            "Name",
            "Sex",
            "Age",
            "Phone",
            "Record number",
            "Register a patient",
            "1 patient",
        ):
            assert heading in body, heading
        assert "Nurse / care coordinator" in body
        assert "登记患者" not in body

    def test_a_signed_in_users_choice_follows_them_to_a_new_session(self, client, world):
        _sign_in(client, "doctor.cardiology")
        _switch(client, "en")
        client.logout()
        client.cookies.clear()
        _sign_in(client, "doctor.cardiology")
        assert "<h1>Patients</h1>" in client.get(reverse("patients:list")).content.decode()

    def test_patient_page_in_both_languages(self, client, world, make_patient):
        patient = make_patient(name="王五")
        _sign_in(client, "nurse.cardiology")
        url = reverse("patients:detail", args=[patient.pk])
        body = client.get(url).content.decode()
        for text in (
            "概览",
            "病史",
            "用药",
            "就诊记录",
            "检查报告",
            "知情同意",
            "时间线",
            "暂无已知过敏史",
            "过敏史",
            "诊断",
            "生活方式",
            "编辑基本信息",
        ):
            assert text in body, text
        _switch(client, "en", url)
        body = client.get(url).content.decode()
        for text in (
            "Overview",
            "History",
            "Medications",
            "Visits",
            "Reports",
            "Consents",
            "Timeline",
            "No known allergies recorded",
            "Edit details",
        ):
            assert text in body, text
        assert "概览" not in body

    def test_medication_form_shows_chinese_frequencies(self, client, world, make_patient):
        patient = make_patient()
        _sign_in(client, "doctor.cardiology")
        url = reverse("patients:record_create", args=[patient.pk, "medications"])
        body = client.get(url).content.decode()
        assert "qd — 每日一次" in body and "tid — 每日三次" in body
        assert "给药途径" in body and "口服" in body

    def test_form_errors_are_chinese(self, client, world):
        _sign_in(client, "nurse.cardiology")
        response = client.post(
            reverse("patients:create"),
            {
                "name": "赵六",
                "sex": "male",
                "date_of_birth": "1949-12-31",
                "national_id": "110105194912310021",
                "phones": "13900001111",
                "preferred_language": "zh-hans",
                "time_zone": "Asia/Shanghai",
            },
        )
        assert response.status_code == 422
        assert "该身份证号校验位不正确，请逐位核对。" in response.content.decode()

    def test_auditor_page_in_chinese(self, client, world):
        _sign_in(client, "auditor")
        body = client.get(reverse("audit:list")).content.decode()
        assert "<h1>审计日志</h1>" in body and "导出 CSV" in body and "审计员" in body


# --- the API --------------------------------------------------------------------------------


@pytest.mark.django_db
class TestApiMessages:
    def _post(self, client: Any, token: str, body: dict[str, Any], language: str | None) -> Any:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        if language:
            headers["HTTP_ACCEPT_LANGUAGE"] = language
        return client.post("/api/patients", body, content_type="application/json", **headers)

    def test_schema_errors_in_chinese_when_asked(self, client, world, token):
        response = self._post(client, token("nurse.cardiology"), {}, "zh-hans")
        assert response.status_code == 422
        data = response.json()
        assert data["code"] == "invalid"
        assert data["message"] == "请修正以下错误。"
        assert data["details"]["name"] == ["此项为必填项。"]

    def test_schema_errors_in_english_when_asked(self, client, world, token):
        data = self._post(client, token("nurse.cardiology"), {}, "en").json()
        assert data["message"] == "Please correct the errors below."
        assert data["details"]["name"] == ["This field is required."]

    def test_without_accept_language_the_users_own_language_is_used(self, client, world, token):
        data = self._post(client, token("nurse.cardiology"), {}, None).json()
        assert data["message"] == "请修正以下错误。"

    def test_form_validation_errors_in_chinese(self, client, world, token):
        body = {
            "name": "孙七",
            "sex": "male",
            "date_of_birth": "1949-12-31",
            "national_id": "110105194912310021",
            "phones": ["13900002222"],
        }
        response = self._post(client, token("nurse.cardiology"), body, "zh-hans")
        assert response.status_code == 422
        data = response.json()
        assert data["message"] == "请修正以下错误。"
        assert data["details"]["national_id"] == ["该身份证号校验位不正确，请逐位核对。"]

    def test_unauthenticated_message_in_chinese(self, client):
        response = client.get("/api/patients", HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 401
        assert response.json()["message"].startswith("需要有效的 Bearer 令牌")
