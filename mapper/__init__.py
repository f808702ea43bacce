"""wlmap: declarative integrations from Scope AR WorkLink webhooks to systems of record."""

__version__ = "0.1.0"
