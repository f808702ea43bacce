"""Buckets as text: the `wlmap buckets list` table and everything `wlmap buckets show` prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mapper.service.operations import when
from mapper.service.store import BucketDetail, BucketRow


def _group(value: Any, width: int = 40) -> str:
    text = "-" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def _closes(bucket: BucketRow) -> str:
    """When and why an open bucket closes; for a closed one, when and why it did."""
    if bucket.status == "closed":
        return f"closed {when(bucket.closed_at)}: {bucket.reason or '-'}"
    parts = []
    if bucket.due_at is not None:
        parts.append(f"{when(bucket.due_at)} ({bucket.due_reason})")
    if bucket.checks_until:
        parts.append("when `until` holds (checked after each item)")
    return "closes " + (" or ".join(parts) if parts else "on its count, its `until` or a limit")


def render_table(rows: Sequence[BucketRow]) -> str:
    if not rows:
        return "no buckets"
    table = [("ID", "MAPPING", "GROUP", "ITEMS", "OPENED", "STATUS", "JOB", "CLOSES")]
    for b in rows:
        job = "-" if b.job is None else str(b.job)
        table.append(
            (str(b.id), b.mapping, _group(b.group), str(b.items), when(b.opened_at), b.status, job, _closes(b))
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in table)


def show_bucket(detail: BucketDetail, limit: int = 200) -> str:
    """The bucket, why and when it closes (or closed), its run, and its items in order."""
    b = detail.bucket
    lines = [
        f"bucket {b.id} · mapping {b.mapping} ({b.mapping_file}) · group {_group(b.group, 200)} · {b.status}",
        f"opened {when(b.opened_at)} · last item {when(b.last_item_at)} · {b.items} item(s), {b.bytes} bytes",
        _closes(b),
    ]
    if b.job is not None:
        lines.append(f"its run: job {b.job} (wlmap events show {b.job}) on delivery d{b.delivery}")
    lines.append("items:")
    for item in detail.items[:limit]:
        text = json.dumps(item.value, ensure_ascii=False)
        lines.append(f"  {item.position}. from d{item.source} at {when(item.added_at)}: {text[:300]}")
    if len(detail.items) > limit:
        lines.append(f"  ... {len(detail.items) - limit} more")
    return "\n".join(lines)
