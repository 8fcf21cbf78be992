"""Patient segments: rule-defined groups recomputed daily, with membership history and a strategy
that changes the member's care plan instances (精准分层)."""
