"""Signatures and encryption against the worked examples the providers and RFCs publish."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec

from careloop.channels.signing import (
    aliyun_percent_encode,
    aliyun_signature,
    parse_tc3_authorization,
    tc3_authorization,
    tc3_canonical_request,
    tc3_signature,
    twilio_signature,
    wechat_signature,
)
from careloop.channels.webpush import (
    b64url,
    b64url_decode,
    decrypt,
    encrypt,
    generate_vapid_key,
    load_vapid_key,
    vapid_authorization,
    verify_vapid,
)


class TestAliyunSignature:
    def test_matches_the_sms_documentation_example(self) -> None:
        params = {
            "AccessKeyId": "testId",
            "Action": "SendSms",
            "Format": "XML",
            "OutId": "123",
            "PhoneNumbers": "15300000001",
            "RegionId": "cn-hangzhou",
            "SignName": "阿里云短信测试专用",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
            "SignatureVersion": "1.0",
            "TemplateCode": "SMS_71390007",
            "TemplateParam": '{"customer":"test"}',
            "Timestamp": "2017-07-12T02:42:19Z",
            "Version": "2017-05-25",
        }
        assert aliyun_signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        # The signature itself is never part of what is signed.
        with_sig = dict(params, Signature="anything")
        assert aliyun_signature("GET", with_sig, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="

    def test_matches_the_rpc_documentation_example(self) -> None:
        params = {
            "AccessKeyId": "testid",
            "Action": "DescribeRegions",
            "Format": "XML",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
            "SignatureVersion": "1.0",
            "Timestamp": "2016-02-23T12:46:24Z",
            "Version": "2014-05-26",
        }
        assert aliyun_signature("GET", params, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="

    def test_percent_encoding_follows_the_pop_rules(self) -> None:
        assert aliyun_percent_encode("a b*~") == "a%20b%2A~"
        assert aliyun_percent_encode("/=&+") == "%2F%3D%26%2B"
        assert aliyun_percent_encode("派") == "%E6%B4%BE"

    def test_method_is_part_of_the_signature(self) -> None:
        params = {"Action": "SendSms", "AccessKeyId": "id"}
        assert aliyun_signature("GET", params, "s") != aliyun_signature("POST", params, "s")


class TestTc3Signature:
    """Tencent Cloud's TC3-HMAC-SHA256 walkthrough (CVM DescribeInstances, 2019-02-25)."""

    PAYLOAD = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )

    def test_matches_the_documentation_example(self) -> None:
        assert (
            hashlib.sha256(self.PAYLOAD).hexdigest()
            == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        )
        canonical = tc3_canonical_request(
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Host": "cvm.tencentcloudapi.com",
            },
            signed_headers=["content-type", "host"],
            payload=self.PAYLOAD,
        )
        assert (
            hashlib.sha256(canonical.encode()).hexdigest()
            == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        )
        signature = tc3_signature(
            secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service="cvm",
            timestamp=1551113065,
            canonical_request=canonical,
        )
        assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"

    def test_authorization_header_round_trips(self) -> None:
        header = tc3_authorization(
            secret_id="AKIDexample",
            secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service="cvm",
            host="cvm.tencentcloudapi.com",
            content_type="application/json; charset=utf-8",
            payload=self.PAYLOAD,
            timestamp=1551113065,
        )
        assert header == (
            "TC3-HMAC-SHA256 Credential=AKIDexample/2019-02-25/cvm/tc3_request, "
            "SignedHeaders=content-type;host, "
            "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        )
        parsed = parse_tc3_authorization(header)
        assert parsed["secret_id"] == "AKIDexample"
        assert parsed["date"] == "2019-02-25"  # the UTC date, not Beijing's 02-26
        assert parsed["service"] == "cvm"


class TestTwilioSignature:
    def test_matches_the_documented_example(self) -> None:
        params = {
            "CallSid": "CA1234567890ABCDE",
            "Caller": "+14158675309",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
        }
        url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        assert twilio_signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        assert twilio_signature("12345", url + "&x=1", params.items()) != (
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        )


class TestWeChatSignature:
    def test_is_sha1_of_the_sorted_parts(self) -> None:
        expected = hashlib.sha1(b"".join(sorted([b"tok", b"1700000000", b"n0nce"]))).hexdigest()  # noqa: S324
        assert wechat_signature("tok", "1700000000", "n0nce") == expected
        assert wechat_signature("tok", "1700000000", "n0nce") == wechat_signature(
            "tok", "1700000000", "n0nce"
        )


class TestWebPushEncryption:
    """RFC 8291 section 5 and appendix A, to the byte."""

    PLAINTEXT = b"When I grow up, I want to be a watermelon"
    UA_PUBLIC = (
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    )
    UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
    AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
    AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
    SALT = "DGv6ra1nlYgDCS1FRnbzlw"
    BODY = (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYW"
        "AmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgS"
        "xsj_Qulcy4a-fN"
    )

    def _key(self, scalar: str) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(int.from_bytes(b64url_decode(scalar), "big"), ec.SECP256R1())

    def test_encrypts_to_the_rfc_example(self) -> None:
        body = encrypt(
            self.PLAINTEXT,
            b64url_decode(self.UA_PUBLIC),
            b64url_decode(self.AUTH),
            salt=b64url_decode(self.SALT),
            as_private=self._key(self.AS_PRIVATE),
        )
        assert b64url(body) == self.BODY

    def test_the_receiver_decrypts_the_rfc_example(self) -> None:
        plaintext = decrypt(
            b64url_decode(self.BODY), self._key(self.UA_PRIVATE), b64url_decode(self.AUTH)
        )
        assert plaintext == self.PLAINTEXT

    def test_a_wrong_auth_secret_does_not_decrypt(self) -> None:
        import pytest

        with pytest.raises(ValueError, match="tag"):
            decrypt(b64url_decode(self.BODY), self._key(self.UA_PRIVATE), b"\x00" * 16)


class TestVapid:
    def test_token_verifies_with_its_public_key_and_carries_the_claims(self) -> None:
        private, public = generate_vapid_key()
        header = vapid_authorization(
            load_vapid_key(private),
            audience="https://push.example.net",
            subject="mailto:care@example.org",
            now=1_700_000_000,
        )
        claims = verify_vapid(header)
        assert claims["aud"] == "https://push.example.net"
        assert claims["sub"] == "mailto:care@example.org"
        assert claims["exp"] == 1_700_000_000 + 12 * 3600
        assert claims["_k"] == public

    def test_a_tampered_token_is_refused(self) -> None:
        import pytest

        private, _ = generate_vapid_key()
        header = vapid_authorization(
            load_vapid_key(private), audience="https://a.example", subject="mailto:x@example.org"
        )
        _, other_public = generate_vapid_key()
        forged = header.rsplit("k=", 1)[0] + "k=" + other_public
        with pytest.raises(ValueError):
            verify_vapid(forged)
