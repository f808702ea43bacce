"""The operator's web console: events, their timelines and history, the actions, mappings and health.

Server-rendered HTML (Jinja, autoescaped) with one small script and one style sheet served from the package: no
build step, nothing from another site. Off unless a credential is configured (`auth`); served beside the webhook
endpoint under /ui, or on an address and port of its own (`--ui-host/--ui-port`) so that it need not face the
internet. It reads the store and asks for actions through it (service.actions); it never runs a mapping itself.
"""
