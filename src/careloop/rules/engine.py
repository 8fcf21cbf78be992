"""The rule set: compiled once from definitions, then fed each patient's events in order."""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careloop.rules.definitions import (
    DEFAULT_RULES,
    SOURCES,
    RuleError,
    Spec,
    check,
    load_file,
)
from careloop.rules.events import Clear, Event, Fire
from careloop.rules.kinds import STATE_FORMAT, Compiled, Step

Personal = Mapping[str, Mapping[str, float]]
Output = Fire | Clear


class StaleState(ValueError):
    """The state was built by another version of the rules: replay the patient's history."""


class State:
    """One patient's rule state: a slot per rule, in the rule set's order. Small, JSON-able."""

    __slots__ = ("version", "slots")

    def __init__(self, version: str, slots: list[Any]) -> None:
        self.version = version
        self.slots = slots

    def to_json(self) -> str:
        return json.dumps(
            {"v": self.version, "s": self.slots}, separators=(",", ":"), allow_nan=False
        )

    @classmethod
    def from_json(cls, data: str | bytes | bytearray) -> State:
        try:
            loaded = json.loads(data)
            version, slots = loaded["v"], loaded["s"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a rule state: {exc}") from None
        if not isinstance(version, str) or not isinstance(slots, list):
            raise ValueError("not a rule state")
        return cls(version, slots)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self.version == other.version and self.slots == other.slots

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"State(version={self.version!r}, slots={self.slots!r})"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the admin and the worklist show about a rule."""

    code: str
    kind: str
    enabled: bool
    severity: str
    priority: str
    route: str
    sla: int  # seconds
    action: str
    text: Mapping[str, str]
    events: tuple[str, ...]
    params: Mapping[str, float]
    dedupe: int  # seconds; 0 = none
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific settings
    definition: Mapping[str, Any] = field(default_factory=dict)  # as given

    @property
    def event_kinds(self) -> tuple[str, ...]:
        return self.events


class RuleSet:
    """Compiled rules. Build with RuleSet.compile(definitions); share freely (immutable)."""

    version: str
    kinds: frozenset[str]

    def __init__(self, specs: list[Spec], version: str) -> None:
        self.version = version
        self._specs = {s.code: s for s in specs}
        self._compiled = [Compiled(spec, i) for i, spec in enumerate(specs)]
        # kind → source → the steps of the rules that take that kind from that source.
        dispatch: dict[str, dict[str, list[Step]]] = {}
        for rule in self._compiled:
            if rule.spec.enabled and rule.step is not None:
                allowed = rule.spec.sources
                for kind in rule.spec.events:
                    by_source = dispatch.setdefault(kind, {src: [] for src in ("", *SOURCES)})
                    for src, steps in by_source.items():
                        if allowed is None or src in allowed:
                            steps.append(rule.step)
        self._dispatch = {
            kind: {src: tuple(steps) for src, steps in by_source.items()}
            for kind, by_source in dispatch.items()
        }
        self.kinds = frozenset(self._dispatch)
        self.codes = tuple(self._specs)
        self._absence = {
            s.code: s.options["days"] * 86400 for s in specs if s.kind == "absence" and s.enabled
        }

    # building ---------------------------------------------------------------------------
    @classmethod
    def compile(cls, definitions: Iterable[Mapping[str, Any]]) -> RuleSet:
        """Check every definition (RuleError on the first problem) and compile them."""
        specs: list[Spec] = []
        seen: set[str] = set()
        for definition in definitions:
            spec = check(definition)
            if spec.code in seen:
                raise RuleError(spec.code, "code", "is used by another rule")
            seen.add(spec.code)
            specs.append(spec)
        canonical = json.dumps(
            [STATE_FORMAT, [s.definition for s in specs]],
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
        version = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        return cls(specs, version)

    @classmethod
    def default(cls) -> RuleSet:
        """The shipped rules (data/default.toml)."""
        return cls.compile(load_file(DEFAULT_RULES))

    @classmethod
    def from_file(cls, path: str | Path) -> RuleSet:
        return cls.compile(load_file(path))

    # describing -------------------------------------------------------------------------
    def rule(self, code: str) -> RuleInfo:
        """The rule `code` (KeyError if there is none), enabled or not."""
        s = self._specs[code]
        options = dict(s.options)
        if s.referral is not None:
            r = s.referral
            options["referral"] = {
                "severity": r.severity,
                "priority": r.priority,
                "route": r.route,
                "sla": r.sla,
                "text": dict(r.text),
            }
        return RuleInfo(
            code=s.code,
            kind=s.kind,
            enabled=s.enabled,
            severity=s.main.severity,
            priority=s.main.priority,
            route=s.main.route,
            sla=s.main.sla,
            action=s.main.action,
            text=dict(s.main.text),
            events=s.events,
            params=dict(s.params),
            dedupe=s.dedupe,
            description=s.description,
            options=options,
            definition=dict(s.definition),
        )

    def rules(self) -> list[RuleInfo]:
        """Every rule, in definition order."""
        return [self.rule(code) for code in self.codes]

    def check_personal(self, code: str, params: Mapping[str, Any]) -> dict[str, float]:
        """Validate personal thresholds for rule `code`; raise RuleError naming the bad one."""
        spec = self._specs[code]
        out: dict[str, float] = {}
        for name, value in params.items():
            if name not in spec.params:
                known = ", ".join(sorted(spec.params)) or "none"
                raise RuleError(code, "params", f"'{name}' is not a parameter (known: {known})")
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise RuleError(code, "params", f"'{name}' must be a finite number")
            out[name] = value
        return out

    def text(self, fire: Fire, language: str) -> str:
        """The fire's message in `language` (falls back to the same language family, en, any)."""
        spec = self._specs[fire.rule]
        templates = spec.main.text
        if fire.stage == "referral" and spec.referral is not None:
            templates = spec.referral.text
        template = _pick(templates, language)
        return _FORMATTER.vformat(template, (), _Missing(fire.values))

    # streaming --------------------------------------------------------------------------
    def new_state(self) -> State:
        return State(self.version, [rule.init_slot() for rule in self._compiled])

    def feed(self, state: State, event: Event, personal: Personal | None = None) -> list[Output]:
        """Run the rules listening to `event.kind`; events of a patient come in time order."""
        out: list[Output] = []
        by_source = self._dispatch.get(event.kind)
        if by_source is None:
            return out
        steps = by_source.get(event.source, ())
        if not steps:
            return out
        if state.version != self.version:
            raise StaleState(
                f"rule state of version {state.version} fed to rules {self.version}: "
                "replay the patient's events into a new state"
            )
        slots = state.slots
        v2 = event.value2
        if v2 is None:
            v2 = math.nan
        for step in steps:
            step(slots, event, v2, personal, out)
        return out

    def feed_many(
        self,
        states: dict[int, State],
        events: Sequence[Event],
        personal_by_patient: Mapping[int, Personal] | None = None,
    ) -> list[Output]:
        """Feed events of many patients (each patient's in order); missing states are created."""
        out: list[Output] = []
        feed = self.feed
        for event in events:
            pid = event.patient_id
            state = states.get(pid)
            if state is None:
                state = states[pid] = self.new_state()
            personal = personal_by_patient.get(pid) if personal_by_patient else None
            found = feed(state, event, personal)
            if found:
                out.extend(found)
        return out

    def replay(
        self, events: Iterable[Event], personal: Personal | None = None
    ) -> tuple[State, list[Output]]:
        """A fresh state fed with `events` (one patient's, in order), and what fired."""
        state = self.new_state()
        out: list[Output] = []
        feed = self.feed
        for event in events:
            found = feed(state, event, personal)
            if found:
                out.extend(found)
        return state, out

    def recompute(
        self,
        events_by_patient: Iterable[tuple[int, Iterable[Event]]],
        personal_by_patient: Mapping[int, Personal] | None = None,
    ) -> list[Output]:
        """Replay each patient's history from scratch; the fires, patient after patient."""
        out: list[Output] = []
        for pid, events in events_by_patient:
            personal = personal_by_patient.get(pid) if personal_by_patient else None
            out.extend(self.replay(events, personal)[1])
        return out

    # absence (evaluated by a periodic sweep, not by feed) ---------------------------------
    def prefilter(self, code: str) -> tuple[str, list[Any]] | None:
        """A SQL predicate selecting the only events that can change the rule's state (for a
        recompute that reads from a database), or None when every event matters. It uses the
        population parameters: patients with a personal threshold need all their events."""
        from careloop.rules import sql

        spec = self._specs[code]
        if spec.kind not in ("count_window", "threshold") or spec.options.get("contexts"):
            return None
        d = spec.definition
        if "resolve" in d or "condition" not in d:
            return None
        return sql.predicate(str(d["condition"]), spec.params, d.get("when"))

    def absence_rules(self) -> list[tuple[str, str, int]]:
        """(code, event kind watched, seconds without one that fire) of enabled absence rules."""
        return [(code, self._specs[code].events[0], secs) for code, secs in self._absence.items()]

    def absent(
        self,
        rule: str | RuleInfo,
        *,
        last_at: int | None,
        expected_since: int,
        now: int,
    ) -> bool:
        """Whether the absence rule fires: nothing since the gap began, for its whole length.

        The gap begins at the later of the last event (None: never) and the time the patient
        was first expected to measure (enrolment); a disabled rule never fires.
        """
        code = rule.code if isinstance(rule, RuleInfo) else rule
        spec = self._specs[code]
        if spec.kind != "absence":
            raise ValueError(f"rule '{code}' is a {spec.kind} rule, not an absence rule")
        seconds = self._absence.get(code)
        if seconds is None:
            return False
        return now - self.gap_start(last_at, expected_since) >= seconds

    @staticmethod
    def gap_start(last_at: int | None, expected_since: int) -> int:
        return expected_since if last_at is None else max(last_at, expected_since)

    def absence_fire(self, code: str, patient_id: int, gap_start: int, now: int) -> Fire:
        """The fire for one gap; its key names the gap, so every sweep over it dedupes."""
        spec = self._specs[code]
        if spec.kind != "absence":
            raise ValueError(f"rule '{code}' is a {spec.kind} rule, not an absence rule")
        main = spec.main
        return Fire(
            rule=code,
            patient_id=patient_id,
            at=now,
            key=f"{code}:{patient_id}:{gap_start}",
            severity=main.severity,
            priority=main.priority,
            route=main.route,
            sla=main.sla,
            action=main.action,
            values={"days": spec.options["days"], "elapsed": max(0, now - gap_start) // 86400},
        )


def _pick(templates: Mapping[str, str], language: str) -> str:
    wanted = (language or "").lower().replace("_", "-")
    if wanted in templates:
        return templates[wanted]
    family = wanted.split("-")[0]
    if family == "zh" and "zh-hans" in templates:
        return templates["zh-hans"]
    for code, template in templates.items():
        if code.split("-")[0] == family:
            return template
    if "en" in templates:
        return templates["en"]
    return next(iter(templates.values()))


class _Missing(dict[str, Any]):
    """Values for a template; anything absent shows as '-' rather than failing."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        return "-"


class _Formatter(string.Formatter):
    """Numbers in texts: whole numbers without '.0', others to at most two decimals."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return kwargs[key]  # type: ignore[index]

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "-"
        if isinstance(value, float) and not format_spec:
            if not math.isfinite(value):
                return "-"
            if value.is_integer():
                return str(int(value))
            return f"{value:.2f}".rstrip("0").rstrip(".")
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _Formatter()
