"""Product: workspaces and users (daily JSONL, only days with changes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sample_company.context import Ctx, fmt, stamp, versions_frame
from sample_company.ids import LOWER_ALNUM, random_ids
from sample_company.timeutil import DAY, NEVER


def build_product_entities(ctx: Ctx) -> None:
    _workspaces(ctx)
    _users(ctx)


def _workspace_name(rng, name: str) -> str:
    k = int(rng.integers(10))
    if k < 5:
        return name
    if k < 7:
        return name.lower().replace(" ", "-")
    if k == 7:
        return f"{name} Compliance"
    if k == 8:
        return f"{name} (prod)"
    return name.split(" ")[0]


def _workspaces(ctx: Ctx) -> None:
    rng = ctx.rng("product.workspaces")
    cfg, acc = ctx.cfg, ctx.acc
    cus = ctx.refs["billing_customer_id"]
    signed = list(cus)
    ids = random_ids(rng, len(signed), "ws_", 10, LOWER_ALNUM)
    ctx.refs["workspace_id"] = dict(zip(signed, ids, strict=True))
    signup_ts = ctx.refs["signup_ts"]
    ws_created: dict[int, int] = {}
    rows: list[dict] = []
    for wid, i in zip(ids, signed, strict=True):
        tz = acc["tz"][i]
        t0 = int(signup_ts[i]) - int(rng.integers(30, 900))
        ws_created[i] = t0
        linked = rng.random() < cfg.workspace_billing_ref_share
        at_creation = linked and rng.random() < 0.6
        state = {
            "workspace_id": wid,
            "workspace_name": _workspace_name(rng, acc["name"][i]),
            "billing_customer_id": cus[i] if at_creation else None,
            "created_at": fmt(t0)[0],
            "deleted_at": None,
        }
        changes: list[tuple[int, dict]] = [(t0, {})]
        if linked and not at_creation and acc["converted"][i]:
            t = int(acc["trial_end"][i]) * DAY + (t0 % DAY) + 60
            changes.append((t, {"billing_customer_id": cus[i]}))
        stop = min(int(acc["churn"][i]), ctx.world.end)
        if rng.random() < cfg.workspace_rename_share and stop > int(acc["signup"][i]) + 2:
            day = int(rng.integers(int(acc["signup"][i]) + 1, stop))
            changes.append((int(stamp(rng, day, tz)[0]), {"workspace_name": acc["name"][i]}))
        deleted = int(acc["ws_deleted"][i])
        if deleted < NEVER:
            t = int(stamp(rng, deleted, tz)[0])
            changes.append((t, {"deleted_at": fmt(t)[0]}))
        changes.sort(key=lambda c: c[0])
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            rows.append({"_rid": wid, "_ts": t, "_seq": seq, **state, "updated_at": fmt(t)[0]})
        ctx.add_truth("product", "workspaces", wid, i, None)
    ctx.refs["workspace_created_ts"] = ws_created
    ctx.versions["product/workspaces"] = versions_frame(rows)


def _users(ctx: Ctx) -> None:
    """One login per person and workspace; deactivated when the person leaves or the workspace
    is deleted. The account's first login invites the others."""
    rng = ctx.rng("product.users")
    acc, m = ctx.acc, ctx.world.members
    ws = ctx.refs["workspace_id"]
    ws_created = ctx.refs["workspace_created_ts"]
    n = len(m)
    ids = random_ids(rng, n, "usr_", 12, LOWER_ALNUM)
    a = m["account"].to_numpy()
    created_day = m["created"].to_numpy()
    t_created = stamp(rng, created_day, acc["tz"][a])
    first_of = m.groupby("account", sort=False).head(1)
    first_idx = dict(zip(first_of["account"].tolist(), first_of.index.tolist(), strict=True))
    for acc_i, idx in first_idx.items():  # the first login signed the workspace up
        t_created[idx] = ws_created[acc_i] + 5
    ws_floor = np.array([ws_created[int(x)] for x in a], dtype=np.int64)
    t_created = np.maximum(t_created, ws_floor + 5)  # nobody logs in before the workspace exists
    stop_day = np.minimum(m["deactivated"].to_numpy(), acc["ws_deleted"][a])
    inviter = np.array([first_idx[int(x)] for x in a])
    self_first = inviter == np.arange(n)
    inviter_ok = ~self_first & (created_day < stop_day[inviter]) & (rng.random(n) < 0.9)
    inviter = np.where(inviter_ok, inviter, -1)
    cols = {c: m[c].tolist() for c in ("email", "name", "role", "person")}
    rows: list[dict] = []
    for j in range(n):
        i = int(a[j])
        t0 = int(t_created[j])
        state = {
            "user_id": ids[j],
            "workspace_id": ws[i],
            "email": cols["email"][j],
            "name": cols["name"][j],
            "role": cols["role"][j],
            "status": "active",
            "invited_by": ids[inviter[j]] if inviter[j] >= 0 else None,
            "created_at": fmt(t0)[0],
        }
        changes: list[tuple[int, dict]] = [(t0, {})]
        if state["role"] == "member" and rng.random() < ctx.cfg.user_promote_share:
            span = min(int(stop_day[j]), ctx.world.end) - int(created_day[j])
            if span > 2:
                day = int(created_day[j]) + int(rng.integers(1, span))
                changes.append((int(stamp(rng, day, acc["tz"][i])[0]), {"role": "admin"}))
        if stop_day[j] < NEVER:
            t = max(int(stamp(rng, int(stop_day[j]), acc["tz"][i])[0]), t0 + 60)
            changes.append((t, {"status": "deactivated"}))
        changes.sort(key=lambda c: c[0])
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            rows.append({"_rid": ids[j], "_ts": t, "_seq": seq, **state, "updated_at": fmt(t)[0]})
        ctx.add_truth("product", "users", ids[j], i, int(cols["person"][j]))
    ctx.refs["user_id"] = ids
    ctx.refs["workspace_floor_ts"] = ws_created
    ctx.refs["user_created_ts"] = t_created
    ctx.refs["user_inviter"] = inviter
    ctx.refs["user_stop_day"] = stop_day
    ctx.versions["product/users"] = versions_frame(rows)


def member_frame(ctx: Ctx) -> pd.DataFrame:
    """Members with the product's view: ids, creation second, inviter, last active day."""
    m = ctx.world.members.copy()
    m["user_id"] = ctx.refs["user_id"]
    m["created_ts"] = ctx.refs["user_created_ts"]
    m["inviter"] = ctx.refs["user_inviter"]
    m["stop_day"] = ctx.refs["user_stop_day"]
    return m
