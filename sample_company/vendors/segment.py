"""Segment: identify, group and track calls as the warehouse/S3 destinations land them.

Each call type is its own folder of daily gzipped JSON lines (`identifies`, `groups`,
`tracks`), one call per line, per the Segment spec: `type`, `messageId`, `userId` and/or
`anonymousId`, `timestamp`, `context` (`library`; `groupId` on track calls), `traits`
(identify, group) or `event` + `properties` (track). A product login is identified by its user
id (traits: email, name, role, status, the inviter, `company.id` = its workspace); a workspace
is a group (traits: name, created/deleted times, the Stripe customer when the product knows it).
Event names are Segment's "Object Action" Title Case; server-side calls made with an
integration token have no user, only an anonymous id naming the token's workspace. Product
analytics also track `Report Exported`, which the vendor vocabulary does not define (so the
platform's unknown-name report has something to show).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sample_company.context import Ctx
from sample_company.ids import fixed_width_strings, uuid4_chars
from sample_company.timeutil import DAY
from sample_company.usage import EVENT_TYPES, Events, T, timestamp_chars
from sample_company.vendors.base import drop_none, rows_of, uuids, versions

LIBRARY = {"name": "analytics-node", "version": "2.1.2"}
EVENT_NAMES = {
    "evidence_upload": "Evidence Uploaded",
    "monitoring_run": "Monitoring Run Completed",
    "report_view": "Report Viewed",
    "api_call": "API Called",
    "integration_connect": "Integration Connected",
    "premium_feature_trial": "Premium Feature Trial Started",
    "user_invite": "User Invited",
    "session_start": "Application Opened",
}
UNKNOWN_EVENT = "Report Exported"  # tracked by the product, absent from the vocabulary
NAMES = (*(EVENT_NAMES[t] for t in EVENT_TYPES), UNKNOWN_EVENT)
UNKNOWN = len(EVENT_TYPES)  # its etype code
EXPORT_SHARE = 0.04  # report views followed by an export


def _first_login(ctx: Ctx) -> dict[str, str]:
    """Workspace -> the login that signed it up (the user a group call is made for)."""
    m = ctx.world.members
    first = m.groupby("account", sort=False).head(1)
    users, ws = ctx.refs["user_id"], ctx.refs["workspace_id"]
    return {
        ws[int(a)]: users[int(i)]
        for a, i in zip(first["account"], first.index, strict=True)
        if int(a) in ws
    }


def groups(ctx: Ctx) -> pd.DataFrame:
    src = ctx.versions["product/workspaces"]
    ids = uuids(ctx.rng("vendor.segment.groups"), len(src))
    login = _first_login(ctx)
    rows = []
    for mid, r in zip(ids, rows_of(src), strict=True):
        cus = r.billing_customer_id if isinstance(r.billing_customer_id, str) else None
        rec = {
            "type": "group",
            "messageId": mid,
            "groupId": r.workspace_id,
            "userId": login.get(r.workspace_id),
            "timestamp": r.updated_at,
            "context": {"library": LIBRARY},
            "traits": drop_none(
                {
                    "name": r.workspace_name,
                    "created_at": r.created_at,
                    "deleted_at": r.deleted_at if isinstance(r.deleted_at, str) else None,
                    "stripe_customer_id": cus,
                }
            ),
        }
        rows.append({"_rid": r.workspace_id, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)


def identifies(ctx: Ctx) -> pd.DataFrame:
    src = ctx.versions["product/users"]
    ids = uuids(ctx.rng("vendor.segment.identifies"), len(src))
    rows = []
    for mid, r in zip(ids, rows_of(src), strict=True):
        rec = {
            "type": "identify",
            "messageId": mid,
            "userId": r.user_id,
            "timestamp": r.updated_at,
            "context": {"library": LIBRARY},
            "traits": drop_none(
                {
                    "email": r.email,
                    "name": r.name,
                    "role": r.role,
                    "status": r.status,
                    "invited_by": r.invited_by if isinstance(r.invited_by, str) else None,
                    "created_at": r.created_at,
                    "company": {"id": r.workspace_id},
                }
            ),
        }
        rows.append({"_rid": r.user_id, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)


def with_unknown_events(ctx: Ctx, ev: Events) -> Events:
    """The same events plus `Report Exported` calls a little after some report views (same
    user, session and delivery day), in delivery order."""
    rng = ctx.rng("vendor.segment.exports")
    pick = np.flatnonzero((ev.etype == T["report_view"]) & (rng.random(len(ev)) < EXPORT_SHARE))
    ts = np.minimum(
        ev.ts[pick] + rng.integers(20, 180, len(pick)), (ev.ts[pick] // DAY + 1) * DAY - 1
    )

    def cat(a: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([a, extra])

    etype = cat(ev.etype, np.full(len(pick), UNKNOWN, dtype=ev.etype.dtype))
    all_ts = cat(ev.ts, ts)
    arrival = cat(ev.arrival, ev.arrival[pick])
    late = cat(ev.late, ev.late[pick])
    order = np.lexsort((all_ts, late, arrival))
    return Events(
        account=cat(ev.account, ev.account[pick])[order],
        member=cat(ev.member, ev.member[pick])[order],
        etype=etype[order],
        ts=all_ts[order],
        session=np.concatenate([ev.session, ev.session[pick]])[order],
        score=cat(ev.score, ev.score[pick])[order],
        arrival=arrival[order],
        late=late[order],
    )


def track_renderer(ctx: Ctx):
    """Events [lo, hi) as Segment track calls, one JSON line each (vectorized with Arrow)."""
    ws = ctx.refs["workspace_id"]
    ws_ids = pa.array([ws.get(i, "") for i in range(ctx.world.n)])
    user_ids = pa.array(ctx.refs["user_id"])
    names = pa.array(list(NAMES))
    library = json.dumps(LIBRARY, separators=(",", ":"))

    def render(ev: Events, lo: int, hi: int, rng: np.random.Generator) -> pa.Array:
        sl = slice(lo, hi)
        n = hi - lo
        message = fixed_width_strings(uuid4_chars(rng, n))
        group = ws_ids.take(pa.array(ev.account[sl]))
        mem = ev.member[sl]
        uid = user_ids.take(pa.array(mem, mask=mem < 0))
        user = pc.fill_null(pc.binary_join_element_wise('"', uid, '"', ""), "null")
        token = pc.binary_join_element_wise('"token_', group, '"', "")
        anon = pc.if_else(pc.is_null(uid), token, pa.scalar("null"))
        event = names.take(pa.array(ev.etype[sl]))
        ts = fixed_width_strings(timestamp_chars(ev.ts[sl]))
        sess = fixed_width_strings(ev.session[sl])
        score = pc.cast(pa.array(ev.score[sl]), pa.string())
        return pc.binary_join_element_wise(
            '{"type":"track","event":"',
            event,
            '","messageId":"',
            message,
            '","userId":',
            user,
            ',"anonymousId":',
            anon,
            ',"timestamp":"',
            ts,
            '","context":{"groupId":"',
            group,
            f'","library":{library}}},"properties":{{"session_id":"',
            sess,
            '","feature_adoption_score":',
            score,
            "}}\n",
            "",
        )

    return render
