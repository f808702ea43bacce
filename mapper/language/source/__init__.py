"""YAML text → plain data plus the line and column of every key and value, with YAML's traps disarmed.

What is refused or kept literal, and why (each a real way to break a target system silently):
- aliases, anchors and tags (`&a`, `*a`, `!!python/...`): refused; a mapping is plain data.
- duplicate keys: refused (PyYAML keeps the last one without a word).
- YAML 1.1 booleans and numbers (`NO`, `on`, `yes`, `012345`, `1.10`, `0x1F`, `2024-01-01`): kept as the
  text typed. Only `true`/`false`, `null`/`~`, decimal integers without a leading zero and decimal numbers
  that read back exactly as typed become non-strings.
- more than one document, more than 1 MiB, nesting deeper than 64.

A value refused here is remembered (`Document.refused`), so that later checks do not pile their own
complaints about the placeholder on top of the one that says what to fix.

Modules: `reader` (read), `loaders` (PyYAML composing nodes only), `problems` (YAML errors in plain words),
`document` (the result, placing problems by path), `positions` (spans, and characters inside scalars).
"""

from mapper.language.source.document import Document, Path, split_lines
from mapper.language.source.positions import Span
from mapper.language.source.reader import MAX_BYTES, MAX_DEPTH, read

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Document", "Path", "Span", "read", "split_lines"]
