"""A fake Tencent Cloud SMS and VMS API: checks TC3-HMAC-SHA256 signatures, keeps records."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Sent
from careloop.channels.signing import (
    parse_tc3_authorization,
    same,
    tc3_canonical_request,
    tc3_date,
    tc3_signature,
)

_VERSIONS = {"SendSms": ("sms", "2021-01-11"), "SendTtsVoice": ("vms", "2020-09-02")}
_MESSAGES = {
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found.",
    "AuthFailure.SignatureExpire": "Signature expired.",
}


class FakeTencent(FakeServer):
    """``SendSms`` (2021-01-11, up to 200 numbers) and ``SendTtsVoice`` (2020-09-02).

    ``fail_numbers`` keys are E.164 numbers; values are per-number status codes.
    """

    name = "tencent_sms"

    def __init__(
        self,
        *,
        secret_id: str = "",
        secret_key: str = "",
        callback_token: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.secret_id = secret_id or "AKIDfake" + secrets.token_hex(8)
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.callback_token = callback_token or secrets.token_urlsafe(18)

    def config(self) -> dict[str, Any]:
        return {
            "endpoint": self.url + "/",
            "secret_id": self.secret_id,
            "secret_key": self.secret_key,
            "region": "ap-guangzhou",
            "sdk_app_id": "1400000001",
            "voice_sdk_app_id": "1400000002",
            "sign_name": "随访中心",
            "template_id": "100001",
            "callback_token": self.callback_token,
            "timeout": 5,
        }

    @staticmethod
    def _error(code: str, status: int = 200) -> FakeResponse:
        return FakeResponse.of_json(
            {
                "Response": {
                    "Error": {"Code": code, "Message": _MESSAGES.get(code, code)},
                    "RequestId": str(uuid.uuid4()),
                }
            },
            status,
        )

    def handle(self, req: FakeRequest) -> FakeResponse:
        if req.method != "POST" or req.path != "/":
            return self._error("InvalidParameter.Method")
        action = req.headers.get("x-tc-action", "")
        problem = self._verify(req, action)
        if problem is not None:
            return problem
        failure = self.take_failure()
        if failure is not None:
            if failure.code:
                return self._error(failure.code)
            return FakeResponse(failure.status, b"upstream error", "text/plain")
        try:
            payload = req.json()
        except ValueError:
            return self._error("InvalidParameter.JsonParseError")
        if action == "SendSms":
            return self._send_sms(payload)
        return self._send_voice(payload)

    def _verify(self, req: FakeRequest, action: str) -> FakeResponse | None:
        auth = parse_tc3_authorization(req.headers.get("authorization", ""))
        if not auth:
            return self._error("AuthFailure.InvalidAuthorization")
        if auth["secret_id"] != self.secret_id:
            return self._error("AuthFailure.SecretIdNotFound")
        try:
            stamp = int(req.headers.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error("InvalidParameter.Timestamp")
        if abs(time.time() - stamp) > 300:
            return self._error("AuthFailure.SignatureExpire")
        if action not in _VERSIONS:
            return self._error("InvalidAction")
        service, version = _VERSIONS[action]
        if req.headers.get("x-tc-version") != version:
            return self._error("NoSuchVersion")
        if auth["service"] != service or auth["date"] != tc3_date(stamp):
            return self._error("AuthFailure.SignatureFailure")
        signed = [h for h in auth["signed_headers"].split(";") if h]
        if "host" not in signed or "content-type" not in signed:
            return self._error("AuthFailure.SignatureFailure")
        canonical = tc3_canonical_request(
            method=req.method, headers=req.headers, signed_headers=signed, payload=req.body
        )
        expected = tc3_signature(
            secret_key=self.secret_key,
            service=service,
            timestamp=stamp,
            canonical_request=canonical,
        )
        if not same(auth["signature"], expected):
            return self._error("AuthFailure.SignatureFailure")
        return None

    def _send_sms(self, payload: dict[str, Any]) -> FakeResponse:
        numbers = payload.get("PhoneNumberSet") or []
        if not numbers or not payload.get("SmsSdkAppId") or not payload.get("TemplateId"):
            return self._error("MissingParameter")
        if len(numbers) > 200:
            return self._error("LimitExceeded.PhoneNumberCountLimit")
        params = [str(p) for p in payload.get("TemplateParamSet") or []]
        session = str(payload.get("SessionContext") or "")
        statuses = []
        for number in numbers:
            number = str(number)
            code = self.failure_for(number)
            if not code and not (number.startswith("+") and number[1:].isdigit()):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            serial = f"2645:{uuid.uuid4().int % 10**28}" if not code else ""
            statuses.append(
                {
                    "SerialNo": serial,
                    "PhoneNumber": number,
                    "Fee": 1 if not code else 0,
                    "SessionContext": session,
                    "Code": code or "Ok",
                    "Message": "send success" if not code else code,
                    "IsoCode": "CN",
                }
            )
            if not code:
                self.record(
                    Sent(
                        provider="tencent_sms",
                        to=number,
                        ref=session,
                        id=serial,
                        text=f"【{payload.get('SignName', '')}】" + " ".join(params),
                        at=self.now(),
                        extra={"template": payload.get("TemplateId"), "params": params},
                    )
                )
        return FakeResponse.of_json(
            {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}
        )

    def _send_voice(self, payload: dict[str, Any]) -> FakeResponse:
        number = str(payload.get("CalledNumber") or "")
        if not number or not payload.get("VoiceSdkAppid") or not payload.get("TemplateId"):
            return self._error("MissingParameter")
        code = self.failure_for(number)
        if code:
            return self._error(code)
        if not (number.startswith("+") and number[1:].isdigit()):
            return self._error("InvalidParameterValue.IncorrectPhoneNumber")
        call_id = str(uuid.uuid1())
        session = str(payload.get("SessionContext") or "")
        self.record(
            Sent(
                provider="tencent_voice",
                to=number,
                ref=session,
                id=call_id,
                text=" ".join(str(p) for p in payload.get("TemplateParamSet") or []),
                at=self.now(),
                extra={"template": payload.get("TemplateId")},
            )
        )
        return FakeResponse.of_json(
            {
                "Response": {
                    "SendStatus": {"CallId": call_id, "SessionContext": session},
                    "RequestId": str(uuid.uuid4()),
                }
            }
        )

    # --- callbacks the real service would push ----------------------------------------------

    def status_report(self, sent: Sent, *, success: bool = True) -> bytes:
        item = {
            "user_receive_time": self.now().strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": sent.to.removeprefix("+86"),
            "report_status": "SUCCESS" if success else "FAIL",
            "errmsg": "DELIVRD" if success else "MK:0001",
            "description": "用户短信送达成功" if success else "用户短信接收失败",
            "sid": sent.id,
        }
        return json.dumps([item], ensure_ascii=False).encode("utf-8")

    def reply(self, number: str, text: str) -> bytes:
        item = {
            "extend": "",
            "mobile": number.removeprefix("+86"),
            "nationcode": "86",
            "sign": "随访中心",
            "text": text,
            "time": int(time.time()),
        }
        return json.dumps(item, ensure_ascii=False).encode("utf-8")
