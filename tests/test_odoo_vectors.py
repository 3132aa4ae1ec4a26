"""Recorded Odoo request/response vectors (tests/fixtures/odoo/, each naming the Odoo source it follows): the test
double must answer each request exactly so, and the client must classify each response as recorded."""
import datetime as dt
import json
import pathlib
import xmlrpc.client

import httpx
import pytest
from fastapi.testclient import TestClient

from probes.odoo_client import OdooClient, OdooError
from tests.support import fake_odoo

VECTORS = sorted((pathlib.Path(__file__).parent / "fixtures" / "odoo").glob("*.json"))
LOOSE = ("<traceback>", "<message>")


def same(recorded, actual, path="", unordered=False) -> None:
    """Equal, but for values recorded as <traceback>/<message> (any string) or <any>; `unordered`: the top list's
    order is not part of the contract (e.g. read_group groups)."""
    if recorded == "<any>":
        return
    if unordered and isinstance(recorded, list):
        assert isinstance(actual, list) and len(recorded) == len(actual), path
        left = list(actual)
        for item in recorded:
            for i, candidate in enumerate(left):
                try:
                    same(item, candidate, path)
                except AssertionError:
                    continue
                left.pop(i)
                break
            else:
                raise AssertionError((path, "no match for", item))
        return
    if isinstance(recorded, str) and recorded in LOOSE:
        assert isinstance(actual, str), path
    elif isinstance(recorded, dict):
        assert isinstance(actual, dict) and set(recorded) == set(actual), (path, set(recorded) ^ set(actual))
        for k in recorded:
            same(recorded[k], actual[k], f"{path}.{k}")
    elif isinstance(recorded, list):
        assert isinstance(actual, list) and len(recorded) == len(actual), path
        for i, (a, b) in enumerate(zip(recorded, actual)):
            same(a, b, f"{path}[{i}]")
    else:
        assert recorded == actual, (path, recorded, actual)


def load(path):
    v = json.loads(path.read_text())
    assert v["sources"], f"{path.name} names no source"
    return v


def fake_for(v):
    """The double for a vector: the seeded book, at a fixed `now` when the vector gives one (answers with times),
    after a named scenario (`fake_odoo.SCENARIOS`) when it gives one."""
    groups = fake_odoo.LEAST_PRIVILEGED if v["groups"] == "least_privileged" else fake_odoo.ALL_GROUPS
    now = dt.datetime.fromisoformat(v["now"]) if "now" in v else None
    fake = fake_odoo.FakeOdoo(v["version"], groups=groups, queue_job=v.get("queue_job", True),
                              rpc_gated=v.get("rpc_gated", False), now=now)
    if "scenario" in v:
        fake_odoo.SCENARIOS[v["scenario"]](fake)
    return fake


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_the_double_answers_as_recorded(path):
    v = load(path)
    client = TestClient(fake_for(v).app)
    req, rec = v["request"], v["response"]
    if v["transport"] == "jsonrpc":
        r = client.post("/jsonrpc", json=req)
        assert r.status_code == rec["status"]
        body = r.json()
        if "result" in rec["body"]:
            assert set(body) == set(rec["body"]) and body["id"] == rec["body"]["id"]
            same(rec["body"]["result"], body["result"], unordered=v.get("unordered", False))
        else:
            same(rec["body"], body)
    elif v["transport"] == "xmlrpc":
        r = client.post(f"/xmlrpc/2/{req['service']}", content=xmlrpc.client.dumps(tuple(req["params"]),
                                                                                   req["method"]))
        assert r.status_code == rec["status"]
        with pytest.raises(xmlrpc.client.Fault) as f:
            xmlrpc.client.loads(r.content)
        assert (f.value.faultCode, f.value.faultString) == (rec["fault"]["faultCode"], rec["fault"]["faultString"])
    else:
        r = client.post(req["path"], json=req["body"], headers=req["headers"])
        assert r.status_code == rec["status"]
        same(rec["body"], r.json(), unordered=v.get("unordered", False))


def replaying_client(v: dict) -> OdooClient:
    """A client whose every call gets the vector's recorded response (through an httpx mock transport)."""
    rec = v["response"]

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/web/version":
            return httpx.Response(200, json={"version_info": [v["version"], 0, 0, "final", 0, ""]})
        if v["transport"] == "xmlrpc":
            body = xmlrpc.client.dumps(xmlrpc.client.Fault(rec["fault"]["faultCode"], rec["fault"]["faultString"]),
                                       methodresponse=True)
            return httpx.Response(rec["status"], content=body.encode(), headers={"Content-Type": "text/xml"})
        return httpx.Response(rec["status"], json=rec["body"])
    c = OdooClient("http://odoo.test", "prod", "bot", "pw", "key" if v["transport"] == "json2" else "",
                   v["transport"], transport=httpx.MockTransport(reply))
    c.uid = 2
    return c


ERRORS = [p for p in VECTORS if json.loads(p.read_text())["expect"] is not None]
GROUPINGS = [p for p in VECTORS if json.loads(p.read_text())["expect"] is None and "read_group" in p.stem]


@pytest.mark.parametrize("path", GROUPINGS, ids=[p.stem for p in GROUPINGS])
def test_the_client_reads_the_recorded_groups(path):
    """read_group (16–18) and formatted_read_group (19) answers become the same rows for the probe."""
    c = replaying_client(load(path))
    rows = c.group("account.move", [("state", "=", "posted")], ["company_id", "currency_id"], ["amount_total"])
    got = {(r["company_id"][1], r["currency_id"][1]): (r["__count"], r["amount_total"]) for r in rows}
    assert got == {("Revwatch SA", "EUR"): (7, 1305.0), ("Revwatch Inc", "USD"): (1, 500.0)}


@pytest.mark.parametrize("path", ERRORS, ids=[p.stem for p in ERRORS])
def test_the_client_classifies_the_recorded_response(path):
    v = load(path)
    c = replaying_client(v)
    with pytest.raises(OdooError) as e:
        c.search_count("account.move", [])
    for kind in ("access_error", "missing_model", "invalid_field", "auth_error", "gated"):
        assert getattr(e.value, kind) == v["expect"].get(kind, False), kind
