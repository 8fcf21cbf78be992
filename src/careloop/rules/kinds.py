"""Each rule kind as a compiled step: a closure run for every event the rule listens to.

A step is ``step(slots, ev, v2, personal, out)``: it reads and updates its own slot of the
patient's state (``slots[index]``, a small list of JSON numbers), and appends any Fire or Clear
to ``out``. Everything a step needs is bound into the closure when the rule set is compiled,
so the hot path does no lookups by name and allocates nothing unless it fires.

Slot layouts (stable: persisted states depend on them; bump STATE_FORMAT when changing):

- threshold, questionnaire: ``[next_at, open]``
- adverse_reaction: ``[next_at, open, last_urgent]``
- consecutive: ``[next_at, open, last_period, run, fired_in_run]``
- trend: ``[next_at, open, [[day, sum, count], ...], recent_sum, recent_n, before_sum,
  before_n]`` (at most 2 x window_days buckets; the sums are those of the two windows)
- count_window, non_adherence: ``[next_at, open, [at, ...]]`` (at most `count` times)
- public_health: ``[streak, followup_open, referral_open, followup_at]``
- absence: ``None`` (evaluated by RuleSet.absent, not by feed)

``next_at`` is the earliest effective time at which the rule may fire again (dedupe); NEVER
means "not before a resolving event". ``open`` is 1 while a fire has not been cleared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from careloop.rules import expr
from careloop.rules.definitions import Spec, Stage
from careloop.rules.events import Clear, Event, Fire

STATE_FORMAT = 2
NEVER = 1 << 62

Cond = Callable[[Event, float, int, float], bool]
# (condition, resolve, when, merged params)
Funcs = tuple[Cond | None, Cond | None, Cond | None, Mapping[str, float]]
Step = Callable[[list[Any], Event, float, Mapping[str, Any] | None, list[Any]], None]

_CACHE_LIMIT = 4096


class Compiled:
    """One rule ready to run: its spec, its slot index, its conditions per parameter set."""

    __slots__ = ("spec", "index", "names", "factory", "default", "cache", "step")

    def __init__(self, spec: Spec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.names = tuple(sorted(spec.params))
        self.factory = _factory(spec, self.names)
        self.default: Funcs = self._funcs(dict(spec.params))
        self.cache: dict[tuple[Any, ...], Funcs] = {}
        self.step: Step | None = None if spec.kind == "absence" else BUILDERS[spec.kind](self)

    def _funcs(self, params: dict[str, float]) -> Funcs:
        condition, resolve, when = self.factory(*(params[n] for n in self.names))
        return condition, resolve, when, params

    def personalise(self, personal: Mapping[str, Any]) -> Funcs:
        """Conditions with this patient's personal thresholds; cached per distinct set."""
        key = tuple(map(personal.get, self.names))
        try:
            found = self.cache.get(key)
        except TypeError:  # an unhashable value: not a number anyway
            return self.default
        if found is None:
            merged: dict[str, Any] = dict(self.spec.params)
            for name, value in zip(self.names, key, strict=True):
                if _is_number(value):
                    merged[name] = value
            found = self.default if merged == self.spec.params else self._funcs(merged)
            if len(self.cache) >= _CACHE_LIMIT:
                self.cache.clear()
            self.cache[key] = found
        return found

    def init_slot(self) -> Any:
        kind = self.spec.kind
        if kind == "absence":
            return None
        if kind in ("threshold", "questionnaire"):
            return [0, 0]
        if kind == "adverse_reaction":
            return [0, 0, 0]
        if kind == "consecutive":
            return [0, 0, None, 0, 0]
        if kind == "trend":
            return [0, 0, [], 0, 0, 0, 0]
        if kind in ("count_window", "non_adherence"):
            return [0, 0, []]
        return [0, 0, 0, 0]  # public_health


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _factory(spec: Spec, names: tuple[str, ...]) -> Callable[..., tuple[Cond | None, ...]]:
    """Compile the rule's checked expressions into a maker of (condition, resolve, when)."""
    lines = [f"def _make({', '.join(names)}):"]
    returned = []
    for field in ("condition", "resolve", "when"):
        code = spec.exprs.get(field)
        if code is None:
            returned.append("None")
            continue
        # Underscored names: parameters cannot start with "_", so they never shadow these.
        lines.append(f"    def _{field}(ev, v2, count, mean):")
        lines.append(f"        return {code}")
        returned.append(f"_{field}")
    lines.append(f"    return ({', '.join(returned)},)")
    namespace: dict[str, Any] = {
        "__builtins__": {},
        "_nan": math.nan,
        "_len": len,
        "_div": expr.div,
    }
    # The source is written by expr.translate from a whitelisted, type-checked tree; parameter
    # names are checked identifiers. Nothing of the author's text reaches exec verbatim.
    exec(compile("\n".join(lines), f"<rule {spec.code}>", "exec"), namespace)  # noqa: S102
    maker: Callable[..., tuple[Cond | None, ...]] = namespace["_make"]
    return maker


def _fire(code: str, stage: Stage, ev: Event, values: dict[str, Any], name: str = "") -> Fire:
    pid = ev.patient_id
    at = ev.at
    key = f"{code}:{name}:{pid}:{at}" if name else f"{code}:{pid}:{at}"
    return Fire(
        code,
        pid,
        at,
        key,
        stage.severity,
        stage.priority,
        stage.route,
        stage.sla,
        stage.action,
        name,
        values,
        ev.ref,
    )


def _values(ev: Event, params: Mapping[str, float]) -> dict[str, Any]:
    values: dict[str, Any] = dict(params)
    values["value"] = ev.value
    values["value2"] = ev.value2
    values["context"] = ev.context
    values["hour"] = ev.hour
    return values


def _conditions(
    default: Any, personalise: Any, has_params: bool, personal: Mapping[str, Any] | None, code: str
) -> Any:
    """The rule's compiled conditions with the patient's own parameters, if any."""
    if has_params and personal is not None:
        mine = personal.get(code)
        if mine:
            return personalise(mine)
    return default


def _resolve(
    f: Any, s: list[Any], ev: Event, v2: float, count: int, mean: float, code: str, out: list[Any]
) -> None:
    """A resolving event ends the open fire: the rule re-arms and says Clear."""
    resolve = f[1]
    if resolve is not None and resolve(ev, v2, count, mean):
        s[0] = 0
        s[1] = 0
        out.append(Clear(code, ev.patient_id, ev.at))


def _hold(rule: Compiled) -> tuple[int, bool]:
    """(dedupe seconds, whether only a resolving event re-arms the rule)."""
    spec = rule.spec
    return spec.dedupe, spec.dedupe == 0 and "resolve" in spec.exprs


# -- threshold ---------------------------------------------------------------------------
def threshold(rule: Compiled, instrument: str | None = None) -> Step:
    code, index, main = rule.spec.code, rule.index, rule.spec.main
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    dedupe, forever = _hold(rule)
    extra = {"instrument": instrument} if instrument is not None else None

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        if instrument is not None and ev.context != instrument:
            return
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        s = slots[index]
        if f[0](ev, v2, 0, 0.0):  # type: ignore[misc]
            at = ev.at
            if at >= s[0]:
                s[0] = NEVER if forever else at + dedupe
                s[1] = 1
                values = _values(ev, f[3])
                if extra:
                    values.update(extra)
                out.append(_fire(code, main, ev, values))
        elif s[1]:
            _resolve(f, s, ev, v2, 0, 0.0, code, out)

    return step


def questionnaire(rule: Compiled) -> Step:
    return threshold(rule, instrument=rule.spec.options["instrument"])


# -- consecutive days / nights -----------------------------------------------------------
def consecutive(rule: Compiled) -> Step:
    """A run of `n` consecutive local days (or nights) each with at least one qualifying event.

    A period qualifies as soon as one listened event in it meets the condition, so the rule
    fires on the event that makes the n-th period qualify (no waiting for the day to end) and
    fires once per run. A period that ends without a qualifying event -- whether it had only
    non-qualifying events or none at all -- breaks the run: the next qualifying period starts
    a new run at 1. With period "nights", an event belongs to the night that began on the
    evening of its local date (hour >= night_start), or of the previous date (hour <
    night_end); events at other hours are ignored entirely (neither count nor break).
    """
    spec = rule.spec
    code, index, main = spec.code, rule.index, spec.main
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    dedupe, forever = _hold(rule)
    n = spec.options["n"]
    nights = spec.options["period"] == "nights"
    start, end = spec.options["night_start"], spec.options["night_end"]
    wraps = start > end

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        period = ev.day
        if nights:
            hour = ev.hour
            if wraps:
                if hour < end:
                    period -= 1
                elif hour < start:
                    return
            elif not start <= hour < end:
                return
        s = slots[index]
        if f[0](ev, v2, 0, 0.0):  # type: ignore[misc]
            last = s[2]
            if last != period:
                if last is not None and period < last:
                    return  # an earlier period arrived late: the caller replays instead
                if last is not None and period == last + 1:
                    s[3] += 1
                else:
                    s[3] = 1
                    s[4] = 0
                s[2] = period
            at = ev.at
            if s[3] >= n and not s[4] and at >= s[0]:
                s[0] = NEVER if forever else at + dedupe
                s[1] = 1
                s[4] = 1
                values = _values(ev, f[3])
                values["count"] = s[3]
                values["days"] = n
                out.append(_fire(code, main, ev, values))
        elif s[1]:
            _resolve(f, s, ev, v2, 0, 0.0, code, out)

    return step


# -- trend -------------------------------------------------------------------------------
def trend(rule: Compiled) -> Step:
    """Mean of the last `window_days` local days against the `window_days` before them."""
    spec = rule.spec
    code, index, main = spec.code, rule.index, spec.main
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    dedupe, forever = _hold(rule)
    use_value2 = spec.options["field"] == "value2"
    rise = spec.options["rise"]
    window = spec.options["window_days"]
    span = 2 * window
    min_count = spec.options["min_count"]
    nan = math.nan

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        x = v2 if use_value2 else ev.value
        if x - x:  # NaN or infinite (x - x is NaN): not a measurement to average
            return
        s = slots[index]
        buckets = s[2]
        day = ev.day
        if buckets and buckets[-1][0] == day:
            # Same day as the newest bucket: only the recent window changes.
            last = buckets[-1]
            last[1] += x
            last[2] += 1
            s[3] += x
            s[4] += 1
        else:
            if not buckets or buckets[-1][0] < day:
                buckets.append([day, x, 1])
            else:  # a day before the newest one: keep the buckets in day order
                _insert(buckets, day, x)
            cut = buckets[-1][0] - span
            while buckets[0][0] <= cut:
                del buckets[0]
            # The windows moved: sum them again (once per day, at most 2 x window buckets).
            split = buckets[-1][0] - window
            recent_sum = recent_n = before_sum = before_n = 0
            for bucket_day, total, count in buckets:
                if bucket_day > split:
                    recent_sum += total
                    recent_n += count
                else:
                    before_sum += total
                    before_n += count
            s[3] = recent_sum
            s[4] = recent_n
            s[5] = before_sum
            s[6] = before_n
        recent_n = s[4]
        before_n = s[6]
        mean = s[3] / recent_n if recent_n else nan
        hit = False
        if recent_n >= min_count and before_n >= min_count:
            previous = s[5] / before_n
            change = mean - previous
            hit = change >= rise if rise > 0 else change <= rise
            condition = f[0]
            if hit and condition is not None:
                hit = condition(ev, v2, recent_n, mean)
            if hit:
                at = ev.at
                if at >= s[0]:
                    s[0] = NEVER if forever else at + dedupe
                    s[1] = 1
                    values = _values(ev, f[3])
                    values["mean"] = mean
                    values["previous"] = previous
                    values["change"] = change
                    values["count"] = recent_n
                    values["days"] = window
                    out.append(_fire(code, main, ev, values))
        if not hit and s[1]:
            _resolve(f, s, ev, v2, recent_n, mean, code, out)

    return step


def _insert(buckets: list[list[Any]], day: int, x: float) -> None:
    for i, bucket in enumerate(buckets):
        if bucket[0] == day:
            bucket[1] += x
            bucket[2] += 1
            return
        if bucket[0] > day:
            buckets.insert(i, [day, x, 1])
            return
    buckets.append([day, x, 1])


# -- count in a window / non-adherence ---------------------------------------------------
def count_window(rule: Compiled) -> Step:
    """At least `count` qualifying events within `window` seconds (inclusive) up to an event
    fire at that event (a sliding window, as SQL's COUNT(*) OVER a RANGE frame counts it); the
    dedupe window keeps a run of such events from firing again and again.
    """
    spec = rule.spec
    code, index, main = spec.code, rule.index, spec.main
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    dedupe, forever = _hold(rule)
    need = spec.options["count"]
    window = spec.options["window"]
    contexts = spec.options.get("contexts")
    hours = window / 3600
    days = window / 86400
    extra = {
        "hours": int(hours) if hours.is_integer() else hours,
        "days": int(days) if days.is_integer() else days,
    }

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        condition = f[0]
        s = slots[index]
        if (
            ev.context in contexts  # type: ignore[operator]
            if contexts is not None
            else condition is None or condition(ev, v2, 0, 0.0)
        ):
            times = s[2]
            at = ev.at
            times.append(at)
            low = at - window
            while times[0] < low:
                del times[0]
            if len(times) > need:
                del times[0]
            if len(times) >= need and at >= s[0]:
                s[0] = NEVER if forever else at + dedupe
                s[1] = 1
                values = _values(ev, f[3])
                values.update(extra)
                values["count"] = len(times)
                out.append(_fire(code, main, ev, values))
        elif s[1]:
            _resolve(f, s, ev, v2, 0, 0.0, code, out)

    return step


# -- adverse reactions -------------------------------------------------------------------
def adverse_reaction(rule: Compiled) -> Step:
    """Every report fires (subject to dedupe); severe ones (value >= urgent_at) escalate.

    Dedupe never hides an escalation: a severe report within the window of a milder fire
    fires again, with the urgent priority.
    """
    spec = rule.spec
    code, index, main = spec.code, rule.index, spec.main
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    dedupe, forever = _hold(rule)
    urgent_at = spec.options["urgent_at"]
    urgent = Stage(
        severity=spec.options["urgent_severity"],
        priority=spec.options["urgent_priority"],
        route=main.route,
        sla=main.sla,
        action=main.action,
        text=main.text,
    )

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        s = slots[index]
        condition = f[0]
        if condition is None or condition(ev, v2, 0, 0.0):
            at = ev.at
            severe = ev.value >= urgent_at
            if at >= s[0] or (severe and not s[2]):
                s[0] = NEVER if forever else at + dedupe
                s[1] = 1
                s[2] = 1 if severe else 0
                out.append(_fire(code, urgent if severe else main, ev, _values(ev, f[3])))
        elif s[1]:
            resolve = f[1]
            if resolve is not None and resolve(ev, v2, 0, 0.0):
                s[0] = 0
                s[1] = 0
                s[2] = 0
                out.append(Clear(code, ev.patient_id, ev.at))

    return step


# -- public health follow-up (国家基本公共卫生服务规范 第三版, 2017) -------------------------
def public_health(rule: Compiled) -> Step:
    """China's basic public health service follow-up for hypertension / type 2 diabetes.

    The first uncontrolled event after a controlled one (or the first ever) fires stage
    "followup" (a task: adjust treatment, follow up within two weeks); the second consecutive
    uncontrolled event fires stage "referral" (at least `referral_gap` after the followup).
    Further uncontrolled events fire nothing more; a controlled event ends the streak and
    clears the stages that fired.
    """
    spec = rule.spec
    code, index, main = spec.code, rule.index, spec.main
    referral: Stage = spec.referral  # type: ignore[assignment]
    default, personalise, has_params = rule.default, rule.personalise, bool(rule.names)
    gap = spec.options["referral_gap"]

    def step(
        slots: list[Any], ev: Event, v2: float, personal: Mapping[str, Any] | None, out: list[Any]
    ) -> None:
        f = _conditions(default, personalise, has_params, personal, code)
        when = f[2]
        if when is not None and not when(ev, v2, 0, 0.0):
            return
        s = slots[index]
        if f[0](ev, v2, 0, 0.0):  # type: ignore[misc]
            streak = s[0] = s[0] + 1
            if streak == 1:
                s[1] = 1
                s[3] = ev.at
                values = _values(ev, f[3])
                values["stage"] = "followup"
                values["count"] = 1
                out.append(_fire(code, main, ev, values, "followup"))
            elif not s[2] and ev.at - s[3] >= gap:
                s[2] = 1
                values = _values(ev, f[3])
                values["stage"] = "referral"
                values["count"] = streak
                out.append(_fire(code, referral, ev, values, "referral"))
        elif s[0]:
            pid, at = ev.patient_id, ev.at
            if s[1]:
                out.append(Clear(code, pid, at, "followup"))
            if s[2]:
                out.append(Clear(code, pid, at, "referral"))
            s[0] = s[1] = s[2] = s[3] = 0

    return step


BUILDERS: dict[str, Callable[[Compiled], Step]] = {
    "threshold": threshold,
    "questionnaire": questionnaire,
    "consecutive": consecutive,
    "trend": trend,
    "count_window": count_window,
    "non_adherence": count_window,
    "adverse_reaction": adverse_reaction,
    "public_health": public_health,
}
