"""Fake targets of the shipped mappings: ServiceNow, SAP S/4HANA, Maximo, Salesforce and a GraphQL asset register.

Each answers the requests its mapping sends with the saved answers in `samples/responses/`, finds records by
the numbers those answers hold (another number is "not found", as the real system says it), and refuses what
the real system refuses: wrong credentials, and for SAP a modifying request without the CSRF token, its
session cookie or If-Match. Error bodies follow each vendor's shape; their texts are the fake's own.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from typing import Any

from mapper.fakes import graphql
from mapper.fakes.server import Reply, Request, Samples


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeServiceNow:
    """Table API: look an incident up by number, PATCH it by sys_id (c_TableAPI.md shapes)."""

    TABLE = "/api/now/table/incident"

    def __init__(self, samples: Samples, user: str, password: str) -> None:
        self.auth = _basic(user, password)
        self.found = samples.json("responses/servicenow-incident-lookup.json")
        self.empty = samples.json("responses/servicenow-incident-lookup-empty.json")
        self.patched = samples.json("responses/servicenow-incident-patch.json")
        records = self.found["result"]
        self.numbers = {record["number"] for record in records}
        self.sys_ids = {record["sys_id"] for record in records}

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self.auth:
            return Reply(401, _snow_error("User Not Authenticated", "Required to provide Auth information"))
        if request.method == "GET" and request.path == self.TABLE:
            query = request.params.get("sysparm_query", "")
            return Reply(200, self.found if query.removeprefix("number=") in self.numbers else self.empty)
        sys_id = request.path.removeprefix(self.TABLE + "/")
        if request.method == "PATCH" and request.path.startswith(self.TABLE + "/"):
            if sys_id not in self.sys_ids:
                return Reply(404, _snow_error("No Record found", "Record doesn't exist or ACL restricts it"))
            if not isinstance(request.json(), dict):
                return Reply(400, _snow_error("Exception while reading request", "The payload is not valid JSON"))
            return Reply(200, self.patched)
        return Reply(400, _snow_error("Requested URI does not represent any resource", request.path))


def _snow_error(message: str, detail: str) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


class FakeSap:
    """API_MAINTNOTIFICATION (OData V2): CSRF token fetch, read with ETag, PATCH with If-Match, complete."""

    SERVICE = "/sap/opu/odata/sap/API_MAINTNOTIFICATION/"

    def __init__(self, samples: Samples, user: str, password: str) -> None:
        self.auth = _basic(user, password)
        self.notification = samples.json("responses/sap-notification.json")
        self.read_headers = samples.json("responses/sap-notification.headers.json")
        self.patched = samples.json("responses/sap-notification-patched.json")
        self.key = self.notification["d"]["MaintenanceNotification"]
        self.etag = self.read_headers["etag"]
        self.token = secrets.token_urlsafe(16)
        self.session = secrets.token_hex(8)
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("authorization") != self.auth:
            return Reply(401, "Logon failed", {"content-type": "text/plain", "www-authenticate": 'Basic realm="SAP"'})
        if request.headers.get("x-csrf-token", "").lower() == "fetch":
            cookie = f"SAP_SESSIONID_DEMO={self.session}; path=/; HttpOnly"
            return Reply(200, None, {"x-csrf-token": self.token, "set-cookie": cookie})
        if request.method != "GET" and not self._session_holds(request):
            return Reply(
                403, "CSRF token validation failed", {"x-csrf-token": "Required", "content-type": "text/plain"}
            )
        entity = f"{self.SERVICE}MaintenanceNotification('{self.key}')"
        with self.lock:
            if request.path == entity:
                return self._entity(request)
            if request.method == "POST" and request.path == self.SERVICE + "CompleteMaintNotification":
                if request.params.get("MaintenanceNotification") != f"'{self.key}'":
                    return Reply(404, _odata_error("Notification not found"))
                return Reply(200, {"d": {**self.notification["d"], "NotifProcessingPhase": "4"}})
        if request.path.startswith(self.SERVICE + "MaintenanceNotification("):
            return Reply(404, _odata_error("Resource not found for the segment 'MaintenanceNotification'"))
        return Reply(404, _odata_error(f"No service or resource at {request.path}"))

    def _session_holds(self, request: Request) -> bool:
        return request.headers.get("x-csrf-token") == self.token and self.session in request.headers.get("cookie", "")

    def _entity(self, request: Request) -> Reply:
        if request.method == "GET":
            body = {"d": {**self.notification["d"], "__metadata": {**self.notification["d"]["__metadata"]}}}
            body["d"]["__metadata"]["etag"] = self.etag
            return Reply(200, body, {**self.read_headers, "etag": self.etag})
        if request.method in ("PATCH", "MERGE"):
            match = request.headers.get("if-match")
            if match is None:
                return Reply(428, _odata_error("Precondition required: send If-Match"))
            if match not in ("*", self.etag):
                return Reply(412, _odata_error("The ETag does not match: the notification was changed"))
            self.etag = self.patched["headers"]["etag"]
            return Reply(self.patched["status"], None, self.patched["headers"])
        return Reply(405, _odata_error(f"{request.method} is not allowed here"))


def _odata_error(message: str) -> dict[str, Any]:
    return {"error": {"code": "WLMAP/DEMO", "message": {"lang": "en", "value": message}}}


class FakeMaximo:
    """MXAPIWODETAIL (OSLC JSON, lean): find a work order by wonum, add a work log by its rest id."""

    COLLECTION = "/maximo/oslc/os/mxapiwodetail"

    def __init__(self, samples: Samples, api_key: str) -> None:
        self.api_key = api_key
        self.found = samples.json("responses/maximo-workorder-collection.json")
        self.empty = samples.json("responses/maximo-workorder-collection-empty.json")
        members = self.found["member"]
        self.wonums = {member["wonum"] for member in members}
        self.rest_ids = {member["href"].rsplit("/", 1)[-1] for member in members}

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("apikey") != self.api_key:
            return Reply(401, {"Error": {"statusCode": "401", "message": "the API key is not valid"}})
        if request.method == "GET" and request.path == self.COLLECTION:
            wonum = re.search(r'wonum="([^"]*)"', request.params.get("oslc.where", ""))
            return Reply(200, self.found if wonum and wonum.group(1) in self.wonums else self.empty)
        rest_id = request.path.removeprefix(self.COLLECTION + "/")
        if request.method == "POST" and request.path.startswith(self.COLLECTION + "/"):
            if rest_id not in self.rest_ids:
                return Reply(404, {"Error": {"statusCode": "404", "message": "no work order with that rest id"}})
            if request.headers.get("x-method-override", "").upper() != "PATCH":
                message = "a POST on a member needs x-method-override"
                return Reply(400, {"Error": {"statusCode": "400", "message": message}})
            return Reply(204)
        return Reply(404, {"Error": {"statusCode": "404", "message": f"no resource at {request.path}"}})


class FakeSalesforce:
    """OAuth 2.0 client credentials, SOQL query, FeedItem create and WorkOrder update (REST API v62.0)."""

    DATA = "/services/data/v62.0"

    def __init__(self, samples: Samples, client_id: str, client_secret: str) -> None:
        self.client = (client_id, client_secret)
        self.access_token = secrets.token_urlsafe(24)
        self.found = samples.json("responses/salesforce-workorder-query.json")
        self.empty = samples.json("responses/salesforce-workorder-query-empty.json")
        self.created = samples.json("responses/salesforce-feeditem-created.json")
        self.numbers = {record["WorkOrderNumber"] for record in self.found["records"]}
        self.ids = {record["Id"] for record in self.found["records"]}

    def __call__(self, request: Request) -> Reply:
        if request.path == "/services/oauth2/token" and request.method == "POST":
            form = request.form()
            given = (form.get("client_id"), form.get("client_secret"))
            if form.get("grant_type") != "client_credentials" or given != self.client:
                return Reply(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
            return Reply(200, {"access_token": self.access_token, "token_type": "Bearer", "scope": "api"})
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if request.method == "GET" and request.path == self.DATA + "/query":
            number = re.search(r"WorkOrderNumber = '([^']*)'", request.params.get("q", ""))
            return Reply(200, self.found if number and number.group(1) in self.numbers else self.empty)
        if request.method == "POST" and request.path == self.DATA + "/sobjects/FeedItem":
            body = request.json()
            if not isinstance(body, dict) or body.get("ParentId") not in self.ids:
                return Reply(400, [{"message": "ParentId: id value of incorrect type", "errorCode": "MALFORMED_ID"}])
            return Reply(201, self.created)
        if request.method == "PATCH" and request.path.startswith(self.DATA + "/sobjects/WorkOrder/"):
            if request.path.rsplit("/", 1)[-1] not in self.ids:
                return Reply(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
            return Reply(204)
        return Reply(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])


class FakeAssetRegister:
    """The made-up asset register of samples/graphql/assets-api.graphql: `assetByTag` and `recordInspection`.

    Every tag names the saved asset; an inspection is recorded once per reference (a second one is refused with
    DUPLICATE_REFERENCE, as the mapping expects)."""

    PATH = "/graphql"

    def __init__(self, samples: Samples, token: str) -> None:
        self.token = token
        self.asset = samples.json("responses/assets-asset-by-tag.json")["data"]["assetByTag"]
        self.recorded = samples.json("responses/assets-inspection-recorded.json")["data"]["recordInspection"]
        self.references: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        if request.path != self.PATH or request.method != "POST":
            return Reply(404, {"errors": [{"message": f"no route {request.method} {request.path}"}]})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"errors": [{"message": "not signed in", "extensions": {"code": "UNAUTHENTICATED"}}]})
        try:
            operation = graphql.read(request.json())
        except graphql.QueryError as exc:
            return Reply(400, {"errors": [{"message": str(exc)}]})
        data: dict[str, Any] = {}
        for field in operation.fields:
            if field.name == "assetByTag":
                data[field.key] = graphql.project(self.asset, field.selection, operation.fragments)
            elif field.name == "recordInspection":
                reference = str((field.arguments.get("input") or {}).get("reference"))
                with self.lock:
                    if reference in self.references:
                        error = {
                            "message": "an inspection with this reference exists",
                            "path": [field.key],
                            "extensions": {"code": "DUPLICATE_REFERENCE"},
                        }
                        return Reply(200, {"data": {field.key: None}, "errors": [error]})
                    self.references.add(reference)
                recorded = {"inspection": {**self.recorded["inspection"], "reference": reference}}
                data[field.key] = graphql.project(recorded, field.selection, operation.fragments)
            else:
                return Reply(400, {"errors": [{"message": f"Cannot query field '{field.name}'"}]})
        return Reply(200, {"data": data})
