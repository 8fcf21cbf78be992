"""The pure rule engine: declarative rules over patients' readings, compiled once, fed in order.

No Django, no database, no clock: callers pass events and times in, and get Fire / Clear out.

    rules = RuleSet.compile(load_file(DEFAULT_RULES))
    state = rules.new_state()                    # one per patient, persisted as state.to_json()
    for out in rules.feed(state, event, personal):  # events of a patient in effective-time order
        ...                                       # Fire -> alert/task keyed by fire.key; Clear
"""

from careloop.rules.definitions import DEFAULT_RULES, RuleError, load_file, parse_duration
from careloop.rules.engine import RuleInfo, RuleSet, StaleState, State
from careloop.rules.events import EVENT_KINDS, Clear, Event, Fire

__all__ = [
    "DEFAULT_RULES",
    "EVENT_KINDS",
    "Clear",
    "Event",
    "Fire",
    "RuleError",
    "RuleInfo",
    "RuleSet",
    "StaleState",
    "State",
    "load_file",
    "parse_duration",
]
