"""Simulated patients: hidden traits drawn from the seed, behaviour and blood pressure.

Nothing here touches the database. Each patient has traits the product never sees and has to
learn from what the patient does: the hour of the day they answer best and how sharply that
falls off, how they respond on each channel, how forgetful they are, whether they drift away
after some weeks (slower answers, fewer readings, unhappy messages, then silence), how much a
voice call or a nurse's call lifts their adherence the next days, and whether side effects
make them skip doses. Blood pressure follows adherence: the medicine's effect builds up over
about two weeks of taking it and wears off when doses are missed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

CHANNELS = ("wechat", "sms", "voice", "outbox")


@dataclass
class Traits:
    peak_hour: int  # local hour at which the patient answers best
    width: float  # hours: how fast responsiveness falls away from the peak
    channel: dict[str, float]  # multiplier per channel
    engagement: float  # base probability of answering a well-timed reminder
    forgetfulness: float  # share of doses forgotten when no reminder is answered
    drift_day: int | None  # simulation day on which the decline starts (None: stays engaged)
    escalation_lift: float  # added to the answer probability for 2 days after a call
    side_effects: bool  # skips doses because of side effects now and then
    latency_minutes: float  # median time to answer
    baseline_sbp: float  # systolic without treatment
    drug_effect: float  # mmHg the medicine lowers systolic at full adherence
    attends: float  # probability of coming to a booked visit
    talks: float  # messages per 30 days
    wording_lift: float  # added to the answer probability by a personal wording


@dataclass
class SimPatient:
    index: int
    traits: Traits
    pid: int = 0
    department: str = "cardiology"
    language: str = "zh-hans"
    # state
    exposure: float = 0.7  # medicine level 0..1 (moving average of doses taken)
    lift_until: int = -1  # simulation day up to which the escalation lift applies
    next_visit_day: int = 0
    taken: int = 0
    doses: int = 0
    history: list[tuple[int, bool]] = field(default_factory=list)  # (day, dose taken)

    # --- behaviour -----------------------------------------------------------------------

    def decline(self, day: int) -> float:
        """0 while engaged; rises to 1 over three weeks after the drift starts."""
        start = self.traits.drift_day
        if start is None or day < start:
            return 0.0
        return min(1.0, (day - start) / 21)

    def hour_factor(self, hour: int) -> float:
        distance = min(abs(hour - self.traits.peak_hour), 24 - abs(hour - self.traits.peak_hour))
        return math.exp(-(distance**2) / (2 * self.traits.width**2))

    def answer_probability(self, hour: int, channel: str, day: int) -> float:
        t = self.traits
        p = t.engagement * (0.45 + 0.55 * self.hour_factor(hour)) * t.channel.get(channel, 0.5)
        p *= 1 - 0.9 * self.decline(day)
        if day <= self.lift_until:
            p += t.escalation_lift
        return max(0.0, min(0.97, p))

    def latency(self, rng: random.Random, day: int) -> float:
        """Minutes until the answer: log-normal around the patient's median, slower in decline."""
        median = self.traits.latency_minutes * (1 + 4 * self.decline(day))
        return min(20 * 60.0, median * math.exp(rng.gauss(0, 0.8)))

    def skip_reason(self, rng: random.Random) -> str:
        """'' when the dose is taken, otherwise the reason given for skipping it."""
        if self.traits.side_effects and rng.random() < 0.18:
            return "side_effect"
        if rng.random() < 0.02:
            return "cost"
        if rng.random() < 0.02:
            return "feeling_well"
        return ""

    def takes_unreminded(self, rng: random.Random, day: int) -> bool:
        """A dose whose reminder was not answered is still taken by the unforgetful."""
        keep = (1 - self.traits.forgetfulness) * (1 - 0.7 * self.decline(day))
        return rng.random() < keep * 0.6

    def record_dose(self, day: int, taken: bool) -> None:
        self.doses += 1
        self.taken += int(taken)
        self.history.append((day, taken))
        # The medicine's level builds up and wears off over about two weeks.
        self.exposure += ((1.0 if taken else 0.0) - self.exposure) / 10

    def lift(self, day: int) -> None:
        self.lift_until = day + 2

    # --- physiology ----------------------------------------------------------------------

    def blood_pressure(
        self, rng: random.Random, *, clinic: bool = False, morning: bool = False
    ) -> tuple[int, int]:
        t = self.traits
        sbp = t.baseline_sbp - t.drug_effect * self.exposure + rng.gauss(0, 6)
        if clinic:
            sbp += 8 + rng.gauss(0, 3)  # white coat
        if morning:
            sbp += 4
        sbp = max(95.0, min(215.0, sbp))
        dbp = 0.52 * sbp + 14 + rng.gauss(0, 4)
        dbp = max(55.0, min(125.0, dbp, sbp - 25))
        return round(sbp), round(dbp)


def draw(rng: random.Random, index: int, days: int) -> SimPatient:
    """One patient's hidden traits."""
    peak = int(max(7, min(21, round(rng.gauss(14, 4.5)))))
    channel = {
        "wechat": rng.uniform(0.7, 1.2),
        "sms": rng.uniform(0.6, 1.1),
        "voice": rng.uniform(0.9, 1.25),
        "outbox": rng.uniform(0.2, 0.5),
    }
    drifts = rng.random() < 0.18 and days >= 21
    traits = Traits(
        peak_hour=peak,
        width=rng.uniform(1.2, 3.5),
        channel=channel,
        engagement=rng.betavariate(6, 2),
        forgetfulness=rng.uniform(0.05, 0.5),
        drift_day=rng.randint(14, max(15, days - 7)) if drifts else None,
        escalation_lift=rng.uniform(0.0, 0.3),
        side_effects=rng.random() < 0.15,
        latency_minutes=rng.uniform(5, 60),
        baseline_sbp=rng.gauss(156, 11),
        drug_effect=max(4.0, rng.gauss(20, 5)),
        attends=rng.uniform(0.65, 0.98),
        talks=rng.uniform(0.0, 1.5),
        wording_lift=rng.uniform(0.05, 0.25) if rng.random() < 0.5 else 0.0,
    )
    patient = SimPatient(index=index, traits=traits)
    patient.exposure = rng.uniform(0.2, 0.8)
    patient.next_visit_day = rng.randint(2, 30)
    return patient


# --- what patients write --------------------------------------------------------------------

_MESSAGES = {
    "zh-hans": {
        "positive": [
            ("血压情况", "最近血压很稳定，谢谢护士的提醒，感觉很好。"),
            ("用药咨询", "药一直按时吃，身体挺好的，谢谢医生。"),
            ("感谢", "谢谢你们的关心，最近精神不错，很满意。"),
        ],
        "neutral": [
            ("复诊时间", "请问下次复诊需要提前预约吗？"),
            ("用药咨询", "早上的药可以饭后吃吗？"),
        ],
        "negative": [
            ("身体不适", "最近总是头晕，吃了药也难受，很担心。"),
            ("药物副作用", "吃药以后脚踝肿，很不舒服，不想再吃了。"),
            ("提醒太多", "提醒太多了，很烦，不想再测血压了。"),
        ],
    },
    "en": {
        "positive": [("Feeling well", "My blood pressure is good lately, thank you for the help.")],
        "neutral": [("Appointment", "Do I need to book my next visit in advance?")],
        "negative": [("Side effects", "I feel dizzy and awful after the pills, I am worried.")],
    },
}


def message(rng: random.Random, patient: SimPatient, day: int, language: str) -> tuple[str, str]:
    """(subject, body) whose tone follows the patient's state."""
    texts = _MESSAGES.get(language, _MESSAGES["zh-hans"])
    decline = patient.decline(day)
    if decline > 0.1 or (patient.traits.side_effects and rng.random() < 0.5):
        mood = "negative"
    elif patient.exposure > 0.6 and rng.random() < 0.7:
        mood = "positive"
    else:
        mood = "neutral"
    return rng.choice(texts[mood])
