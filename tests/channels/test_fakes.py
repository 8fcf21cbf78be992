"""The fakes themselves: they refuse what the real providers refuse, and keep a durable log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from careloop.channels import tencent as tencent_module
from careloop.channels.aliyun import AliyunSmsAdapter
from careloop.channels.fakes import FakeAliyun, FakeTencent
from careloop.channels.port import PermanentError, PermanentReason
from careloop.channels.tencent import TencentSmsAdapter

from .conftest import make_message


class TestSignatureChecks:
    def test_aliyun_refuses_a_replayed_request(self, aliyun: FakeAliyun) -> None:
        AliyunSmsAdapter(aliyun.config()).send(make_message())
        original = aliyun.requests[0]
        replay = urllib.request.Request(  # noqa: S310 - loopback fake
            aliyun.url + "/",
            data=original.body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(replay, timeout=5)  # noqa: S310
        assert json.loads(exc.value.read())["Code"] == "SignatureNonceUsed"
        assert len(aliyun.sent) == 1

    def test_aliyun_refuses_a_tampered_parameter(self, aliyun: FakeAliyun) -> None:
        AliyunSmsAdapter(aliyun.config()).send(make_message())
        body = aliyun.requests[0].body.replace(b"13800000001", b"13800000002")
        body = body.replace(b"SignatureNonce=", b"SignatureNonce=x")
        req = urllib.request.Request(aliyun.url + "/", data=body, method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)  # noqa: S310
        assert json.loads(exc.value.read())["Code"] == "SignatureDoesNotMatch"

    def test_tencent_refuses_a_stale_timestamp(
        self, tencent: FakeTencent, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        stale = types.SimpleNamespace(time=lambda: time.time() - 600)
        monkeypatch.setattr(tencent_module, "time", stale)
        with pytest.raises(PermanentError) as exc:
            TencentSmsAdapter(tencent.config()).send(make_message())
        assert exc.value.code == "AuthFailure.SignatureExpire"
        assert exc.value.reason == PermanentReason.CONFIGURATION


class TestDurableLog:
    def test_sends_are_counted_across_restarts(self, tmp_path: Path) -> None:
        log = tmp_path / "sent.jsonl"
        for round_ in range(2):
            with FakeAliyun(log_path=log) as fake:
                adapter = AliyunSmsAdapter(fake.config())
                for i in range(3):
                    adapter.send(make_message(dedupe_key=f"occ:{round_}:{i}"))
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [line["ref"] for line in lines] == [
            f"occ:{r}:{i}" for r in range(2) for i in range(3)
        ]
        assert {line["provider"] for line in lines} == {"aliyun_sms"}


class TestCommandLine:
    def test_runs_a_fake_in_its_own_process(self, tmp_path: Path) -> None:
        log = tmp_path / "cli.jsonl"
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "careloop.channels.fakes", "aliyun_sms", "--log", str(log)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert proc.stdout is not None
            started = json.loads(proc.stdout.readline())
            assert started["provider"] == "aliyun_sms"
            assert started["url"].startswith("http://127.0.0.1:")
            AliyunSmsAdapter(started["config"]).send(make_message())
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
        assert json.loads(log.read_text())["ref"] == "occ:101:sms:0"
