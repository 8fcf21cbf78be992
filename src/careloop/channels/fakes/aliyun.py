"""A fake Alibaba Cloud SMS and voice API: checks RPC signatures, keeps send records."""

from __future__ import annotations

import json
import random
import secrets
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from careloop.channels.fakes.base import FakeRequest, FakeResponse, FakeServer, Sent
from careloop.channels.signing import aliyun_signature, same

CHINA = ZoneInfo("Asia/Shanghai")
_MESSAGES = {
    "SignatureDoesNotMatch": "Specified signature is not matched with our calculation.",
    "InvalidAccessKeyId.NotFound": "Specified access key is not found.",
    "SignatureNonceUsed": "Specified signature nonce was used already.",
    "InvalidTimeStamp.Expired": "Specified time stamp or date value is expired.",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
}


class FakeAliyun(FakeServer):
    """Dysmsapi ``SendSms``/``SendBatchSms``/``QuerySendDetails`` and Dyvmsapi ``SingleCallByTts``.

    ``fail_numbers`` keys are numbers as Aliyun receives them (``13800000000``).
    """

    name = "aliyun_sms"

    def __init__(
        self,
        *,
        access_key_id: str = "LTAIfakeKeyId",
        access_key_secret: str = "",
        callback_token: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(18)
        self.callback_token = callback_token or secrets.token_urlsafe(18)
        self._nonces: set[str] = set()
        self._nonce_lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        return {
            "endpoint": self.url + "/",
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "sign_name": "随访中心",
            "template_code": "SMS_0000001",
            "tts_code": "TTS_0000001",
            "callback_token": self.callback_token,
            "timeout": 5,
        }

    def _error(self, code: str, status: int = 200) -> FakeResponse:
        return FakeResponse.of_json(
            {
                "RequestId": str(uuid.uuid4()).upper(),
                "HostId": "dysmsapi.aliyuncs.com",
                "Code": code,
                "Message": _MESSAGES.get(code, code),
                "Recommend": "",
            },
            status,
        )

    def handle(self, req: FakeRequest) -> FakeResponse:
        params = dict(req.query)
        if req.method == "POST":
            params.update(req.form())
        problem = self._verify(req.method, params)
        if problem is not None:
            return problem
        action = params.get("Action", "")
        if action == "QuerySendDetails":
            return self._query(params)
        handler = {
            "SendSms": self._send_sms,
            "SendBatchSms": self._send_batch,
            "SingleCallByTts": self._call,
        }.get(action)
        if handler is None:
            return self._error("InvalidAction.NotFound", 404)
        failure = self.take_failure()
        if failure is not None:
            if failure.code:
                return self._error(failure.code)
            return FakeResponse(failure.status, b"<html>Service Unavailable</html>", "text/html")
        return handler(params)

    def _verify(self, method: str, params: dict[str, str]) -> FakeResponse | None:
        if params.get("AccessKeyId") != self.access_key_id:
            return self._error("InvalidAccessKeyId.NotFound", 404)
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return self._error("IncompleteSignature", 400)
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return self._error("InvalidTimeStamp.Format", 400)
        if abs(self.now() - stamp) > timedelta(minutes=15):
            return self._error("InvalidTimeStamp.Expired", 400)
        expected = aliyun_signature(method, params, self.access_key_secret)
        if not same(params.get("Signature", ""), expected):
            return self._error("SignatureDoesNotMatch", 400)
        nonce = params.get("SignatureNonce", "")
        with self._nonce_lock:
            if not nonce or nonce in self._nonces:
                return self._error("SignatureNonceUsed", 400)
            self._nonces.add(nonce)
        return None

    @staticmethod
    def _biz_id() -> str:
        return f"{random.randint(10**17, 10**18 - 1)}^0"  # noqa: S311 - an id, not a secret

    @staticmethod
    def _valid(number: str) -> bool:
        return number.isdigit() and 7 <= len(number) <= 15

    @staticmethod
    def _content(sign: str, params: dict[str, Any]) -> str:
        return f"【{sign}】" + " ".join(f"{k}={v}" for k, v in params.items())

    def _send_sms(self, params: dict[str, str]) -> FakeResponse:
        numbers = [n for n in params.get("PhoneNumbers", "").split(",") if n]
        if not numbers or not params.get("SignName") or not params.get("TemplateCode"):
            return self._error("isv.INVALID_PARAMETERS")
        for number in numbers:
            code = self.failure_for(number)
            if code:
                return self._error(code)
            if not self._valid(number):
                return self._error("isv.MOBILE_NUMBER_ILLEGAL")
        try:
            template_params = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return self._error("isv.INVALID_JSON_PARAM")
        biz_id = self._biz_id()
        for number in numbers:
            self.record(
                Sent(
                    provider="aliyun_sms",
                    to=number,
                    ref=params.get("OutId", ""),
                    id=biz_id,
                    text=self._content(params["SignName"], template_params),
                    at=self.now(),
                    extra={"template": params["TemplateCode"], "params": template_params},
                )
            )
        return FakeResponse.of_json(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4())}
        )

    def _send_batch(self, params: dict[str, str]) -> FakeResponse:
        try:
            numbers = json.loads(params.get("PhoneNumberJson") or "[]")
            signs = json.loads(params.get("SignNameJson") or "[]")
            values = json.loads(params.get("TemplateParamJson") or "[]")
        except ValueError:
            return self._error("isv.INVALID_JSON_PARAM")
        if not numbers or len(numbers) > 100 or not params.get("TemplateCode"):
            return self._error("isv.INVALID_PARAMETERS")
        if len(signs) != len(numbers) or (values and len(values) != len(numbers)):
            return self._error("isv.INVALID_PARAMETERS")
        for number in numbers:
            code = self.failure_for(str(number))
            if code:
                return self._error(code)
            if not self._valid(str(number)):
                return self._error("isv.MOBILE_NUMBER_ILLEGAL")
        biz_id = self._biz_id()
        for i, number in enumerate(numbers):
            template_params = values[i] if values else {}
            self.record(
                Sent(
                    provider="aliyun_sms",
                    to=str(number),
                    ref=params.get("OutId", ""),
                    id=biz_id,
                    text=self._content(signs[i], template_params),
                    at=self.now(),
                    extra={"template": params["TemplateCode"], "params": template_params},
                )
            )
        return FakeResponse.of_json(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4())}
        )

    def _query(self, params: dict[str, str]) -> FakeResponse:
        number = params.get("PhoneNumber", "")
        day = params.get("SendDate", "")
        try:
            size = min(int(params.get("PageSize") or 10), 50)
            page = max(int(params.get("CurrentPage") or 1), 1)
        except ValueError:
            return self._error("isv.INVALID_PARAMETERS")
        if not number or len(day) != 8:
            return self._error("isv.INVALID_PARAMETERS")
        rows = [
            s
            for s in list(self.sent)
            if s.provider == "aliyun_sms"
            and s.to == number
            and s.at.astimezone(CHINA).strftime("%Y%m%d") == day
        ]
        chunk = rows[(page - 1) * size : page * size]
        details = [
            {
                "PhoneNum": s.to,
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "TemplateCode": s.extra.get("template", ""),
                "Content": s.text,
                "SendDate": s.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                "ReceiveDate": s.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                "OutId": s.ref,
            }
            for s in chunk
        ]
        return FakeResponse.of_json(
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": str(uuid.uuid4()),
                "TotalCount": len(rows),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
            }
        )

    def _call(self, params: dict[str, str]) -> FakeResponse:
        number = params.get("CalledNumber", "")
        if not number or not params.get("TtsCode"):
            return self._error("isv.INVALID_PARAMETERS")
        code = self.failure_for(number)
        if code:
            return self._error(code)
        if not self._valid(number):
            return self._error("isv.MOBILE_NUMBER_ILLEGAL")
        call_id = f"{random.randint(10**8, 10**9 - 1)}^{random.randint(10**10, 10**11)}"  # noqa: S311
        self.record(
            Sent(
                provider="aliyun_voice",
                to=number,
                ref=params.get("OutId", ""),
                id=call_id,
                text=params.get("TtsParam", ""),
                at=self.now(),
                extra={"template": params["TtsCode"]},
            )
        )
        return FakeResponse.of_json(
            {"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": str(uuid.uuid4())}
        )

    # --- callbacks the real service would push ----------------------------------------------

    def delivery_report(self, sent: Sent, *, success: bool = True) -> bytes:
        """The SmsReport body Aliyun would push for an accepted message."""
        at = self.now().astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        item = {
            "phone_number": sent.to,
            "send_time": sent.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "report_time": at,
            "success": success,
            "err_code": "DELIVERED" if success else "MK:0001",
            "err_msg": "用户接收成功" if success else "用户接收失败",
            "sms_size": "1",
            "biz_id": sent.id,
            "out_id": sent.ref,
        }
        return json.dumps([item], ensure_ascii=False).encode("utf-8")

    def reply(self, number: str, content: str) -> bytes:
        """The SmsUp body Aliyun would push for a patient's reply."""
        item = {
            "phone_number": number,
            "send_time": self.now().astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "content": content,
            "sign_name": "随访中心",
            "dest_code": "1234",
            "sequence_id": random.randint(1, 10**9),  # noqa: S311
        }
        return json.dumps([item], ensure_ascii=False).encode("utf-8")
