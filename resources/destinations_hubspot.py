"""HubSpot as the reverse-ETL destination: the account updates written as company properties,
by HubSpot company id (`crm_account_id` when the CRM is HubSpot), through
`POST /crm/v3/objects/companies/batch/update`, 100 companies a call.

The properties are the lakehouse's own (`lakehouse_*`, in the property group `lakehouse`); any
that is missing is created before the first update (`GET /crm/v3/properties/companies/<name>`,
then `POST /crm/v3/properties/companies`), so a portal needs no setup beyond the private app's
scopes: `crm.objects.companies.write` and `crm.schemas.companies.write` (plus `.read`).

A batch answered 207 Multi-Status names the companies it could not update in
`errors[].context.ids`: those records fail alone, audited with HubSpot's category and message,
and the next sync retries them; the others count as sent. 429 (HubSpot's ten-secondly and
daily limits) and 5xx are retried, waiting `Retry-After` when sent; past the last attempt the
batch's records fail and the next sync retries them. A refused token (401) stops the sync
naming the setting.

Delete and erase: HubSpot could archive a company, but the companies are the company's own
records, not the lakehouse's; `delete` clears the lakehouse's properties on them instead. The
lakehouse writes no person's data to HubSpot (account-level scores and reasons only), so
`erase` has nothing to remove; a person's own contact record is erased by HubSpot's GDPR delete
(`POST /crm/v3/objects/contacts/gdpr-delete`), which the portal's owner runs, not this sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from resources.crm_http import Exhausted, Retry, call
from resources.destinations import RowResult
from resources.destinations_salesforce import reasons_text

BASE_URL = "https://api.hubapi.com"
BATCH = 100  # batch/update's cap
TOKEN_SETTING = "LAKEHOUSE_HUBSPOT_TOKEN"
URL_SETTING = "LAKEHOUSE_HUBSPOT_BASE_URL"
GROUP = {"name": "lakehouse", "label": "Lakehouse scores", "displayOrder": -1}
# payload field -> (property name, label, type, fieldType)
PROPERTIES: dict[str, tuple[str, str, str, str]] = {
    "churn_risk": ("lakehouse_churn_risk", "Churn risk", "number", "number"),
    "churn_risk_band": ("lakehouse_churn_risk_band", "Churn risk band", "string", "text"),
    "expansion_propensity": (
        "lakehouse_expansion_propensity",
        "Expansion propensity",
        "number",
        "number",
    ),
    "lifecycle_stage": (
        "lakehouse_lifecycle_stage",
        "Lifecycle stage (lakehouse)",
        "string",
        "text",
    ),
    "health_score": ("lakehouse_health_score", "Health score", "number", "number"),
    "next_best_action": ("lakehouse_next_best_action", "Next best action", "string", "text"),
    "action_confidence": ("lakehouse_action_confidence", "Action confidence", "number", "number"),
    "top_reasons": ("lakehouse_top_reasons", "Top churn reasons", "string", "textarea"),
    "churn_model_version": (
        "lakehouse_churn_model_version",
        "Churn model version",
        "string",
        "text",
    ),
    "expansion_model_version": (
        "lakehouse_expansion_model_version",
        "Expansion model version",
        "string",
        "text",
    ),
}


class HubSpotDestinationError(RuntimeError):
    """HubSpot refused the destination itself (token, scopes, property setup)."""


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:300]}


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('category', '')}: {body.get('message', '')}"
    return str(body)[:300]


def value(field: str, v: Any) -> Any:
    """A HubSpot property value: "" clears it; reasons as lines."""
    if v is None:
        return ""
    return reasons_text(v) if field == "top_reasons" else v


class HubSpotDestination:
    """Company property updates by record id (see the module docstring)."""

    def __init__(
        self,
        token: str,
        base_url: str = BASE_URL,
        *,
        batch_size: int = BATCH,
        retry: Retry | None = None,
        timeout: float = 60.0,
    ) -> None:
        if not token:
            raise HubSpotDestinationError(f"the hubspot CRM destination needs {TOKEN_SETTING}")
        self.url = (base_url or BASE_URL).rstrip("/")
        self.batch_size = min(batch_size, BATCH)
        self.retry = retry or Retry()
        self.timeout = timeout
        self.name = f"hubspot:{self.url}/companies"  # never the token
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        self._ready = False
        self.created: list[str] = []  # properties this destination created

    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        response = call(
            self.session, method, f"{self.url}{path}", self.retry, json=body, timeout=self.timeout
        )
        if response.status_code == 401:
            raise HubSpotDestinationError(
                f"HubSpot refused the token (401 {_message(_json(response))}): set "
                f"{TOKEN_SETTING} to a private app access token of the portal"
            )
        if response.status_code == 403:
            raise HubSpotDestinationError(
                f"HubSpot refused access (403 {_message(_json(response))}): the private app of "
                f"{TOKEN_SETTING} needs the scopes crm.objects.companies.write and "
                "crm.schemas.companies.write"
            )
        return response

    def ensure_properties(self) -> None:
        """Create the property group and every lakehouse property that is missing (once per
        destination; a property another sync created meanwhile (409) counts as there)."""
        if self._ready:
            return
        base = "/crm/v3/properties/companies"
        r = self._call("GET", f"{base}/groups/{GROUP['name']}")
        if r.status_code == 404:
            r = self._call("POST", f"{base}/groups", GROUP)
            if r.status_code not in (200, 201, 409):
                raise HubSpotDestinationError(
                    f"HubSpot did not create the property group {GROUP['name']} "
                    f"({r.status_code} {_message(_json(r))})"
                )
        for name, label, kind, field_type in PROPERTIES.values():
            r = self._call("GET", f"{base}/{name}")
            if r.status_code == 200:
                continue
            if r.status_code != 404:
                raise HubSpotDestinationError(
                    f"HubSpot did not answer for property {name} ({r.status_code} "
                    f"{_message(_json(r))})"
                )
            body = {
                "name": name,
                "label": label,
                "type": kind,
                "fieldType": field_type,
                "groupName": GROUP["name"],
                "description": "Written by the customer lakehouse's reverse ETL.",
            }
            r = self._call("POST", base, body)
            if r.status_code in (200, 201):
                self.created.append(name)
            elif r.status_code != 409:
                raise HubSpotDestinationError(
                    f"HubSpot did not create property {name} ({r.status_code} {_message(_json(r))})"
                )
        self._ready = True

    def _send(self, updates: list[tuple[str, dict[str, Any]]]) -> list[RowResult]:
        out: list[RowResult] = []
        for start in range(0, len(updates), self.batch_size):
            chunk = updates[start : start + self.batch_size]
            keys = [k for k, _ in chunk]
            body = {"inputs": [{"id": k, "properties": p} for k, p in chunk]}
            try:
                r = self._call("POST", "/crm/v3/objects/companies/batch/update", body)
            except Exhausted as e:
                out += [RowResult(k, False, str(e)) for k in keys]
                continue
            answer = _json(r)
            if r.status_code not in (200, 207):
                error = f"HTTP {r.status_code} {_message(answer)}"
                out += [RowResult(k, False, error) for k in keys]
                continue
            failed: dict[str, str] = {}
            for e in answer.get("errors") or []:
                for cid in (e.get("context") or {}).get("ids") or []:
                    failed[str(cid)] = _message(e)
            done = {str(x.get("id")) for x in answer.get("results") or []}
            for k in keys:
                if k in failed:
                    out.append(RowResult(k, False, failed[k]))
                elif k in done:
                    out.append(RowResult(k, True))
                else:
                    out.append(RowResult(k, False, "no result for this record"))
        return out

    def _ready_or_failed(self, keys: list[str]) -> list[RowResult] | None:
        """The property setup; when rate limits refuse even that, every record fails (audited,
        retried by the next sync) rather than the sync."""
        try:
            self.ensure_properties()
        except Exhausted as e:
            return [RowResult(k, False, str(e)) for k in keys]
        return None

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]:
        if (refused := self._ready_or_failed([str(r[key]) for r in rows])) is not None:
            return refused
        return self._send(
            [
                (str(row[key]), {p[0]: value(f, row.get(f)) for f, p in PROPERTIES.items()})
                for row in rows
            ]
        )

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]:
        """The lakehouse's properties cleared on those companies (the companies stay)."""
        if (refused := self._ready_or_failed([str(k) for k in keys])) is not None:
            return refused
        return self._send([(str(k), {p[0]: "" for p in PROPERTIES.values()}) for k in keys])

    def erase(self, identifiers: Sequence[str]) -> RowResult:
        """Nothing of a person is written to HubSpot (see the module docstring)."""
        return RowResult("erasure", True, "no personal data written to HubSpot")
