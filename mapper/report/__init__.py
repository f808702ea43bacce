"""Values → text and JSON for people and machines: problems, traces, stored events."""
