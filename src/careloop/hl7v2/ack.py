"""Acknowledgements (ACK) written back to the sender."""

from __future__ import annotations

from datetime import datetime

from careloop.hl7v2.parser import Encoding, Message, escape
from careloop.kit.clock import utc_now

_ENC = Encoding()


def build(
    code: str,
    text: str = "",
    *,
    message: Message | None = None,
    control_id: str = "",
    now: datetime | None = None,
) -> str:
    """An ACK: MSH mirrors the sender's apps (theirs become ours, swapped); MSA-2 their id."""
    moment = (now or utc_now()).strftime("%Y%m%d%H%M%S+0000")
    if message is not None:
        msh = message.msh
        # Sending and receiving application and facility are echoed as received, swapped.
        sending_app, sending_fac = msh.raw(5), msh.raw(6)
        receiving_app, receiving_fac = msh.raw(3), msh.raw(4)
        trigger, version, their_id = message.trigger, message.version or "2.5", message.control_id
        processing = msh.raw(11) or "P"
    else:
        sending_app, sending_fac, receiving_app, receiving_fac = "CareLoop", "", "", ""
        trigger, version, their_id, processing = "", "2.5", control_id, "P"
    own_id = f"ACK{(their_id or moment)[:16]}"
    msh_line = "|".join(
        [
            "MSH",
            "^~\\&",
            sending_app,
            sending_fac,
            receiving_app,
            receiving_fac,
            moment,
            "",
            f"ACK^{trigger}^ACK" if trigger else "ACK",
            escape(own_id, _ENC),
            processing,
            version,
        ]
    )
    reason = escape(text[:400], _ENC)
    lines = [msh_line, f"MSA|{code}|{escape(their_id, _ENC)}|{reason}"]
    if code != "AA":
        err_code = "207" if code == "AE" else "200"
        lines.append(f"ERR|||{err_code}^{reason}^HL70357|E||||{reason}")
    elif text:
        lines.append(f"ERR|||0^{reason}^HL70357|W||||{reason}")
    return "\r".join(lines) + "\r"
