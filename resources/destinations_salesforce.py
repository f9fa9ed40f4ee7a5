"""Salesforce as the reverse-ETL destination: the account updates written onto Account records
through the sObject Collections API, 200 records a call, `allOrNone: false`, so one bad record
fails alone and is audited (and retried by the next sync) alone.

Which API: the sObject Collections (composite) API, not Bulk 2.0. A sync sends only what
changed since the last one (hundreds to a few thousand accounts); collections answer each record
synchronously, in order, with `success` and `errors[]`, which the per-record audit needs, at one
API call per 200 records. Bulk 2.0 is asynchronous (create a job, upload CSV, close, poll, fetch
failed and successful results), counts against the bulk job limits and only pays off from tens
of thousands of records a sync.

How records are matched: by default `Id`, the Salesforce record id the lakehouse already holds
as `crm_account_id` (it came from Salesforce), through `PATCH /composite/sobjects` (update by
record id; Salesforce refuses record ids in the upsert-by-external-id call). With
`LAKEHOUSE_CRM_SALESFORCE_EXTERNAL_ID` set to an External ID field (e.g. `Lakehouse_Id__c`)
holding the lakehouse's key, `PATCH /composite/sobjects/Account/<field>` upserts by it. Neither
creates accounts: the lakehouse never sends `Name`, so an unmatched key fails for that record.

Rate limits: Salesforce refuses a call over the org's limits with 403 `REQUEST_LIMIT_EXCEEDED`
(no Retry-After); a 429 or 5xx is possible behind proxies. Each is retried with backoff, a few
times; then the batch's records are audited failed and the next sync retries them. A refused
token (401) stops the sync with the setting to fix: nothing is audited sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import requests

from resources.crm_http import Exhausted, Retry, call
from resources.destinations import RowResult

API_VERSION = "v62.0"
BATCH = 200  # sObject Collections' cap
TOKEN_SETTING = "LAKEHOUSE_SALESFORCE_TOKEN"
URL_SETTING = "LAKEHOUSE_SALESFORCE_INSTANCE_URL"
# The reverse-ETL payload's fields -> the Account custom fields (create them in Setup > Object
# Manager > Account; types in the README).
FIELDS = {
    "churn_risk": "Churn_Risk__c",
    "churn_risk_band": "Churn_Risk_Band__c",
    "expansion_propensity": "Expansion_Propensity__c",
    "lifecycle_stage": "Lifecycle_Stage__c",
    "health_score": "Health_Score__c",
    "next_best_action": "Next_Best_Action__c",
    "action_confidence": "Action_Confidence__c",
    "top_reasons": "Top_Reasons__c",
    "churn_model_version": "Churn_Model_Version__c",
    "expansion_model_version": "Expansion_Model_Version__c",
}


class SalesforceDestinationError(RuntimeError):
    """The org refused the destination itself (token, permissions, missing fields)."""


def reasons_text(value: Any) -> Any:
    """The reasons' JSON list as lines a CRM user reads; anything else unchanged."""
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except ValueError:
            return value
        if isinstance(items, list):
            return "\n".join(str(i) for i in items)
    return value


def _errors(body: Any) -> str:
    first = body[0] if isinstance(body, list) and body else body
    if isinstance(first, dict):
        return f"{first.get('errorCode', '')}: {first.get('message', '')}"
    return str(body)[:300]


def _limit(response: requests.Response) -> bool:
    return response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text


class SalesforceDestination:
    """Account updates through sObject Collections (see the module docstring)."""

    def __init__(
        self,
        instance_url: str,
        token: str,
        *,
        sobject: str = "Account",
        external_id: str = "Id",
        batch_size: int = BATCH,
        retry: Retry | None = None,
        timeout: float = 60.0,
    ) -> None:
        if not instance_url:
            raise SalesforceDestinationError(f"the salesforce CRM destination needs {URL_SETTING}")
        if not token:
            raise SalesforceDestinationError(
                f"the salesforce CRM destination needs {TOKEN_SETTING}"
            )
        self.url = instance_url.rstrip("/")
        self.sobject = sobject
        self.external_id = external_id
        self.batch_size = min(batch_size, BATCH)
        self.retry = retry or Retry()
        self.timeout = timeout
        self.name = f"salesforce:{self.url}/{sobject}"  # never the token
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        self._checked = False
        self.calls = 0

    # -- HTTP ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        self.calls += 1
        response = call(
            self.session,
            method,
            f"{self.url}/services/data/{API_VERSION}/{path}",
            self.retry,
            json=body,
            timeout=self.timeout,
            retryable=_limit,
        )
        if response.status_code == 401:
            raise SalesforceDestinationError(
                f"Salesforce refused the access token (401 {_errors(_json(response))}): set "
                f"{TOKEN_SETTING} to a valid OAuth access token for the org at {URL_SETTING}"
            )
        if response.status_code == 403:
            raise SalesforceDestinationError(
                f"Salesforce refused access (403 {_errors(_json(response))}): the user of "
                f"{TOKEN_SETTING} needs API Enabled and edit access to {self.sobject} and the "
                "lakehouse fields"
            )
        return response

    def check(self) -> None:
        """Once per destination: the fields it writes exist (else the error names them all, not
        one record at a time), and the match field is an External ID."""
        if self._checked:
            return
        response = self._call("GET", f"sobjects/{self.sobject}/describe")
        if response.status_code != 200:
            raise SalesforceDestinationError(
                f"Salesforce could not describe {self.sobject} ({response.status_code} "
                f"{_errors(_json(response))})"
            )
        fields = {f["name"]: f for f in response.json().get("fields", [])}
        missing = [f for f in FIELDS.values() if f not in fields]
        if missing:
            raise SalesforceDestinationError(
                f"Salesforce {self.sobject} lacks the fields the lakehouse writes: "
                f"{', '.join(missing)}; create them (Setup > Object Manager > {self.sobject} > "
                "Fields & Relationships, see docs/crm_apis.md)"
            )
        if self.external_id != "Id" and not fields.get(self.external_id, {}).get("externalId"):
            raise SalesforceDestinationError(
                f"LAKEHOUSE_CRM_SALESFORCE_EXTERNAL_ID={self.external_id}: not an External ID "
                f"field of {self.sobject}"
            )
        self._checked = True

    # -- the Destination protocol -------------------------------------------------------------

    def _record(self, key: str, values: dict[str, Any]) -> dict[str, Any]:
        return {"attributes": {"type": self.sobject}, self.external_id: key, **values}

    def _send(self, records: list[tuple[str, dict]]) -> list[RowResult]:
        out: list[RowResult] = []
        for start in range(0, len(records), self.batch_size):
            chunk = records[start : start + self.batch_size]
            body = {"allOrNone": False, "records": [self._record(k, v) for k, v in chunk]}
            path = (
                "composite/sobjects"
                if self.external_id == "Id"
                else f"composite/sobjects/{self.sobject}/{self.external_id}"
            )
            keys = [k for k, _ in chunk]
            try:
                response = self._call("PATCH", path, body)
            except Exhausted as e:
                out += [RowResult(k, False, str(e)) for k in keys]
                continue
            answer = _json(response)
            if response.status_code != 200 or not isinstance(answer, list):
                error = f"HTTP {response.status_code} {_errors(answer)}"
                out += [RowResult(k, False, error) for k in keys]
                continue
            for i, k in enumerate(keys):  # results come in input order
                result = answer[i] if i < len(answer) else None
                if result is None:
                    out.append(RowResult(k, False, "no result for this record"))
                elif result.get("success"):
                    out.append(RowResult(k, True))
                else:
                    errors = "; ".join(
                        f"{e.get('statusCode')}: {e.get('message')}" for e in result["errors"]
                    )
                    out.append(RowResult(k, False, errors or "failed without an error"))
        return out

    def _checked_or_failed(self, keys: list[str]) -> list[RowResult] | None:
        """The field check; when the org's limits refuse even that, every record fails (audited,
        retried by the next sync) rather than the sync."""
        try:
            self.check()
        except Exhausted as e:
            return [RowResult(k, False, str(e)) for k in keys]
        return None

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]:
        if (refused := self._checked_or_failed([str(r[key]) for r in rows])) is not None:
            return refused
        records = [
            (
                str(row[key]),
                {
                    sf: reasons_text(row.get(f)) if f == "top_reasons" else row.get(f)
                    for f, sf in FIELDS.items()
                },
            )
            for row in rows
        ]
        return self._send(records)

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]:
        """The lakehouse's fields cleared on those accounts: the accounts are the company's
        records, never deleted from here."""
        if (refused := self._checked_or_failed([str(k) for k in keys])) is not None:
            return refused
        return self._send([(str(k), dict.fromkeys(FIELDS.values())) for k in keys])

    def erase(self, identifiers: Sequence[str]) -> RowResult:
        """Nothing to erase: the lakehouse writes account-level scores, bands, actions, reasons
        and model versions onto Accounts, never a person's data. The person's own Contact or
        Lead is the company's record, erased in Salesforce by its own privacy process."""
        return RowResult("erasure", True, "no personal data written to Salesforce")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:300]
