"""Product usage events, vectorized over account x day matrices (no loop per event).

Sessions per account-day are Poisson with a rate that follows engagement, the number of active
users, weekdays, onboarding and, for accounts that will churn, a linear decay over the last
30-60 days before the churn date. Each session is a session_start plus a geometric number of
events whose type mix follows the account's adoption. integration_connect events in the first
30 days, premium_feature_trial events (destiny-weighted before an upgrade) and user_invite
events (one per invited login) are drawn separately. ~1% of events arrive 1-3 days late.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sample_company.context import Ctx
from sample_company.ids import fixed_width_strings, hex_chars, uuid4_chars
from sample_company.timeutil import DAY, NEVER, date_of

EVENT_TYPES = (
    "evidence_upload",
    "monitoring_run",
    "report_view",
    "api_call",
    "integration_connect",
    "premium_feature_trial",
    "user_invite",
    "session_start",
)
T = {name: i for i, name in enumerate(EVENT_TYPES)}
MIX_TYPES = ("evidence_upload", "monitoring_run", "report_view", "api_call", "integration_connect")


@dataclass
class Events:
    """Usage events in delivery order (by arrival day, on-time before late, by time)."""

    account: np.ndarray  # int32
    member: np.ndarray  # int32 index into members, -1 = no user (API token)
    etype: np.ndarray  # int8 index into EVENT_TYPES
    ts: np.ndarray  # int64 seconds
    session: np.ndarray  # (n, 20) uint8 session id chars
    score: np.ndarray  # float64, rounded to 3 decimals
    arrival: np.ndarray  # int64 day the event is delivered
    late: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.ts)


class _Picker:
    """Pick an active login of an account on a day, weighted by role (rejection sampling)."""

    def __init__(self, members: pd.DataFrame, n_accounts: int):
        self.acc = members["account"].to_numpy()
        w = members["weight"].to_numpy(dtype=np.float64)
        self.cum = np.cumsum(w)
        before = np.concatenate([[0.0], self.cum])
        first = np.searchsorted(self.acc, np.arange(n_accounts), side="left")
        last = np.searchsorted(self.acc, np.arange(n_accounts), side="right")
        self.base = before[first]
        self.total = before[last] - before[first]
        self.first, self.last = first, last
        self.lo = members["lo"].to_numpy()
        self.hi = members["hi"].to_numpy()

    def pick(self, rng: np.random.Generator, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        out = np.full(len(acc), -1, dtype=np.int64)
        todo = np.arange(len(acc))
        for _ in range(40):
            if len(todo) == 0:
                break
            a = acc[todo]
            x = self.base[a] + rng.random(len(todo)) * self.total[a]
            m = np.searchsorted(self.cum, x, side="right")
            m = np.clip(m, self.first[a], self.last[a] - 1)
            ok = (self.lo[m] <= day[todo]) & (day[todo] < self.hi[m])
            out[todo[ok]] = m[ok]
            todo = todo[~ok]
        for k in todo:  # a rare leftover: the first login active that day
            cand = np.arange(self.first[acc[k]], self.last[acc[k]])
            act = cand[(self.lo[cand] <= day[k]) & (day[k] < self.hi[cand])]
            out[k] = act[0] if len(act) else -1
        return out


def simulate_events(ctx: Ctx, members: pd.DataFrame) -> Events:
    cfg, acc, start, end = ctx.cfg, ctx.acc, ctx.world.start, ctx.world.end
    rng = ctx.rng("product.usage")
    A, D = ctx.world.n, end - start + 1
    days = np.arange(D)
    signup = acc["signup"] - start
    churn = np.minimum(acc["churn"], acc["ws_deleted"]) - start
    churn = np.where(acc["churn"] >= NEVER, NEVER, churn)
    act_lo = np.clip(signup, 0, D)
    act_hi = np.clip(np.minimum(churn, D), 0, D)

    # logins active per account-day (a login acts from creation until it stops or churn)
    m = members.copy()
    ma = m["account"].to_numpy()
    m["lo"] = np.clip(np.maximum(m["created"].to_numpy() - start, act_lo[ma]), 0, D)
    m["hi"] = np.clip(np.minimum(m["stop_day"].to_numpy() - start, act_hi[ma]), 0, D)
    m.loc[m["hi"] < m["lo"], "hi"] = m["lo"]
    diff = np.zeros((A, D + 1), dtype=np.int32)
    np.add.at(diff, (ma, m["lo"].to_numpy()), 1)
    np.add.at(diff, (ma, m["hi"].to_numpy()), -1)
    n_active = np.cumsum(diff, axis=1)[:, :D]
    picker = _Picker(m, A)

    weekday = np.array([date_of(start + d).weekday() for d in range(D)])
    wk = np.where(weekday >= 5, cfg.weekend_factor, 1.0)
    rel = days[None, :]
    churn_c = churn[:, None].astype(np.float64)
    decay_len = acc["decay_len"][:, None]
    x = np.clip((churn_c - rel) / decay_len, 0.0, 1.0)
    decay = cfg.decay_floor + (1 - cfg.decay_floor) * x
    tenure = rel - signup[:, None]
    ramp = np.clip(0.5 + 0.5 * tenure / cfg.onboarding_ramp_days, 0.5, 1.0)
    eng = acc["eng"] * np.where(acc["converted"], 1.0, cfg.non_converter_engagement)
    lam = (
        cfg.sessions_per_user_day
        * eng[:, None]
        * np.power(n_active, cfg.users_exponent)
        * wk[None, :]
        * decay
        * ramp
    )
    n_sess = rng.poisson(lam)
    s_acc, s_day = np.nonzero(n_sess)
    reps = n_sess[s_acc, s_day]
    s_acc = np.repeat(s_acc, reps)
    s_day = np.repeat(s_day, reps)
    ns = len(s_acc)
    s_member = picker.pick(rng, s_acc, s_day)
    tz = acc["tz"]
    local = np.clip(rng.normal(13.0, 2.6, ns), 7.0, 20.5) * 3600
    s_tod = ((local - tz[s_acc] * 3600) % DAY).astype(np.int64)
    s_ts = (start + s_day).astype(np.int64) * DAY + s_tod
    s_ids = hex_chars(rng, ns, "ses_", 16)

    # events within sessions
    extra = rng.geometric(1.0 / cfg.events_per_session_extra, ns)
    n_ev = 1 + extra
    e_sess = np.repeat(np.arange(ns), n_ev)
    pos = np.arange(len(e_sess)) - np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    e_acc = s_acc[e_sess]
    adopt = acc["adopt"]
    mix = np.array([cfg.event_mix[t] for t in MIX_TYPES])
    tilt = np.stack(
        [0.6 + 0.8 * adopt, 0.6 + 0.8 * adopt, 0.6 + 0.8 * adopt, 1.4 - 0.8 * adopt, 1 + 0 * adopt],
        axis=1,
    )
    probs = rng.dirichlet(np.ones(len(MIX_TYPES)) * 20, A) * mix[None, :] * tilt
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1).astype(np.float32)
    u = rng.random(len(e_sess), dtype=np.float32)
    choice = np.zeros(len(e_sess), dtype=np.int8)
    for k in range(len(MIX_TYPES) - 1):
        choice += (u > cum[e_acc, k]).astype(np.int8)
    mix_codes = np.array([T[t] for t in MIX_TYPES], dtype=np.int8)
    e_type = np.where(pos == 0, T["session_start"], mix_codes[choice]).astype(np.int8)
    gaps = np.where(pos == 0, 0, rng.exponential(75.0, len(e_sess)).astype(np.int64) + 1)
    csum = np.cumsum(gaps)
    first_in = np.cumsum(n_ev) - n_ev
    offset = csum - np.repeat(csum[first_in], n_ev)
    day_end = (start + s_day[e_sess] + 1).astype(np.int64) * DAY - 1
    e_ts = np.minimum(s_ts[e_sess] + offset, day_end)
    e_member = s_member[e_sess]
    no_user = (e_type == T["api_call"]) & (
        rng.random(len(e_sess)) < cfg.api_call_without_user_share
    )
    e_member = np.where(no_user, -1, e_member)
    e_session = e_sess  # index into s_ids
    e_day = s_day[e_sess]

    # integration_connect in the first 30 days of accounts that sign up in the window
    n30 = acc["n_int30"]
    span = np.minimum(30, np.minimum(churn, D) - signup)
    ok = (signup >= 0) & (span > 0) & (n30 > 0)
    i_acc = np.repeat(np.flatnonzero(ok), n30[ok])
    i_day = signup[i_acc] + (rng.random(len(i_acc)) * span[i_acc]).astype(np.int64)
    keep = i_day < D
    i_acc, i_day = i_acc[keep], i_day[keep]

    # premium_feature_trial: destiny-weighted before an upgrade, only if a next tier exists
    up = acc["upgrade"] - start
    has_up = acc["upgrade"] < NEVER
    tier_now = acc["tier0"][:, None] + (has_up[:, None] & (rel >= up[:, None]))
    boost = np.where(has_up[:, None] & (rel < up[:, None]), cfg.premium_destiny_mult, 1.0)
    pre = (
        has_up[:, None] & (rel < up[:, None]) & (rel >= up[:, None] - cfg.premium_pre_upgrade_days)
    )
    boost = np.where(pre, cfg.premium_pre_upgrade_mult, boost)
    lam_p = (
        cfg.premium_trials_per_day
        * acc["premium_prop"][:, None]
        * boost
        * (tier_now < 2)
        * (n_active > 0)
        * wk[None, :]
    )
    n_p = rng.poisson(lam_p)
    p_acc, p_day = np.nonzero(n_p)
    reps = n_p[p_acc, p_day]
    p_acc, p_day = np.repeat(p_acc, reps), np.repeat(p_day, reps)

    x_acc = np.concatenate([i_acc, p_acc])
    x_day = np.concatenate([i_day, p_day])
    x_type = np.concatenate(
        [
            np.full(len(i_acc), T["integration_connect"]),
            np.full(len(p_acc), T["premium_feature_trial"]),
        ]
    ).astype(np.int8)
    active_any = (
        (x_day >= act_lo[x_acc])
        & (x_day < act_hi[x_acc])
        & (n_active[x_acc, np.minimum(x_day, D - 1)] > 0)
    )
    x_acc, x_day, x_type = x_acc[active_any], x_day[active_any], x_type[active_any]
    x_member = picker.pick(rng, x_acc, x_day)

    # user_invite: the inviter's event when an invited login is created inside the window
    inv = m["inviter"].to_numpy()
    c_ts = m["created_ts"].to_numpy()
    c_day = c_ts // DAY - start
    has_inv = (inv >= 0) & (c_day >= 0) & (c_day < D)
    inv_safe = np.where(has_inv, inv, 0)
    has_inv &= (m["lo"].to_numpy()[inv_safe] <= c_day) & (c_day < m["hi"].to_numpy()[inv_safe])
    u_member = inv[has_inv]
    u_acc = ma[has_inv]
    u_day = c_day[has_inv]
    u_ts = c_ts[has_inv]

    nx, nu = len(x_acc), len(u_acc)
    local = np.clip(rng.normal(13.0, 2.6, nx), 7.0, 20.5) * 3600
    x_ts = (start + x_day).astype(np.int64) * DAY + ((local - tz[x_acc] * 3600) % DAY).astype(
        np.int64
    )
    extra_ids = hex_chars(rng, nx + nu, "ses_", 16)
    sessions = np.concatenate([s_ids, extra_ids])

    account = np.concatenate([e_acc, x_acc, u_acc]).astype(np.int32)
    member = np.concatenate([e_member, x_member, u_member]).astype(np.int32)
    etype = np.concatenate([e_type, x_type, np.full(nu, T["user_invite"], np.int8)])
    ts = np.concatenate([e_ts, x_ts, u_ts]).astype(np.int64)
    sess_idx = np.concatenate([e_session, ns + np.arange(nx + nu)])
    day = np.concatenate([e_day, x_day, u_day]).astype(np.int64)
    valid = member >= -1
    valid &= ~((member < 0) & (etype != T["api_call"]))

    # feature_adoption_score: the account's level, growing with tenure, falling with decay
    dec = decay[account, np.clip(day, 0, D - 1)]
    ten = np.clip((day - signup[account]) / 180.0, 0.0, 1.0)
    score = adopt[account] + 0.15 * ten - 0.25 * (1 - dec)
    score = np.clip(score + rng.normal(0, cfg.adoption_event_noise, len(ts)), 0.0, 1.0)
    score = np.round(score, 3)

    # no event before its login (or, for token calls, its workspace) was created
    ws_created = ctx.refs["workspace_floor_ts"]
    ws_floor = np.array([ws_created.get(i, 0) for i in range(A)], dtype=np.int64)
    floor = np.where(member >= 0, c_ts[np.maximum(member, 0)], ws_floor[account])
    ts = np.maximum(ts, floor + 1)

    late = rng.random(len(ts)) < cfg.late_event_share
    delay = rng.choice(np.arange(1, 4), size=len(ts), p=np.array(cfg.late_delay_probs))
    arrival = ts // DAY + np.where(late, delay, 0)
    valid &= (arrival <= end) & (ts // DAY >= start)

    idx = np.flatnonzero(valid)
    order = idx[np.lexsort((ts[idx], late[idx], arrival[idx]))]
    return Events(
        account=account[order],
        member=member[order],
        etype=etype[order],
        ts=ts[order],
        session=sessions[sess_idx[order]],
        score=score[order],
        arrival=arrival[order],
        late=late[order],
    )


# ---------------------------------------------------------------------------------- rendering

_TOD = None


def _tod_table() -> np.ndarray:
    global _TOD
    if _TOD is None:
        s = np.arange(DAY)
        h, mi, se = s // 3600, (s // 60) % 60, s % 60
        txt = np.char.add(
            np.char.add(np.char.zfill(h.astype(str), 2), ":"),
            np.char.add(
                np.char.add(np.char.zfill(mi.astype(str), 2), ":"), np.char.zfill(se.astype(str), 2)
            ),
        )
        _TOD = txt.astype("S8").view(np.uint8).reshape(DAY, 8)
    return _TOD


def timestamp_chars(ts: np.ndarray) -> np.ndarray:
    """(n, 20) uint8 of `YYYY-MM-DDTHH:MM:SSZ` without formatting each value."""
    days = ts // DAY
    d0 = int(days.min()) if len(days) else 0
    uniq = np.arange(d0, int(days.max()) + 1 if len(days) else d0 + 1)
    lut = np.array([date_of(d).isoformat() + "T" for d in uniq], dtype="S11").view(np.uint8)
    lut = lut.reshape(len(uniq), 11)
    out = np.empty((len(ts), 20), np.uint8)
    out[:, :11] = lut[days - d0]
    out[:, 11:19] = _tod_table()[ts % DAY]
    out[:, 19] = ord("Z")
    return out


def render_lines(
    ev: Events, lo: int, hi: int, ws_ids: pa.Array, user_ids: pa.Array, rng: np.random.Generator
) -> pa.Array:
    """Events [lo, hi) as JSON lines (each ending in a newline), one Arrow string each."""
    sl = slice(lo, hi)
    n = hi - lo
    event_id = fixed_width_strings(uuid4_chars(rng, n))
    ws = ws_ids.take(pa.array(ev.account[sl]))
    mem = ev.member[sl]
    uid = user_ids.take(pa.array(mem, mask=mem < 0))
    uid_json = pc.fill_null(pc.binary_join_element_wise('"', uid, '"', ""), "null")
    types = pa.array(list(EVENT_TYPES)).take(pa.array(ev.etype[sl]))
    ts = fixed_width_strings(timestamp_chars(ev.ts[sl]))
    sess = fixed_width_strings(ev.session[sl])
    score = pc.cast(pa.array(ev.score[sl]), pa.string())
    return pc.binary_join_element_wise(
        '{"event_id":"',
        event_id,
        '","workspace_id":"',
        ws,
        '","user_id":',
        uid_json,
        ',"event_type":"',
        types,
        '","timestamp":"',
        ts,
        '","session_id":"',
        sess,
        '","feature_adoption_score":',
        score,
        "}\n",
        "",
    )
