"""The mapping language: YAML text → an immutable Plan, every expression compiled, every name resolved; no network."""
