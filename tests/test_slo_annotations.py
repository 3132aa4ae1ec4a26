"""Annotations: API (ingest to write, read to list), CLI, returned with (as-of) evaluations, adjustments shown as
annotations, exposed for Grafana's annotation query."""
import datetime as dt
import json
from pathlib import Path

from tests.support.servers import revwatch_cmd

ROOT = Path(__file__).parents[1]

CFG = """
slos:
  - {name: api, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
  - {name: other, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: erp, bad_when: {StatusCode: Error}}}
adjustments:
  - {name: nightly, start: "2026-01-01T02:00", duration: 30m, rrule: FREQ=DAILY, slos: [api]}
"""


def test_annotations_api_evaluations_and_grafana(api_factory):
    api = api_factory(CFG)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    deploy = {"time": (now - dt.timedelta(hours=2)).isoformat(), "text": "deploy billing 4.2.1", "slos": ["api"],
              "tags": ["deploy"]}
    assert api.post("/api/v1/annotations", json=deploy, scope="read").status_code == 403
    r = api.post("/api/v1/annotations", json=deploy)                       # ingest key
    assert r.status_code == 201, r.text
    upgrade = {"time": (now - dt.timedelta(hours=30)).isoformat(), "text": "Odoo 18 upgrade", "tags": ["odoo-upgrade"]}
    assert api.post("/api/v1/annotations", json=upgrade).status_code == 201
    for bad, field in [({"time": "yesterday"}, "time"), ({"time": "2026-12-01T10:00:00"}, "time"),
                       ({"text": ""}, "text"), ({"slos": ["nope"]}, "slos"), ({"tags": ["a b"]}, "tags"),
                       ({"colour": "red"}, "colour")]:
        r = api.post("/api/v1/annotations", json={**deploy, **bad})
        assert r.status_code == 400 and r.json()["field"] == field, (bad, r.text)
    assert api.post("/api/v1/annotations", content=b"[1]").json() == {"error": "body must be an annotation object",
                                                                       "field": "body"}
    items = api.get("/api/v1/annotations", params={"from": (now - dt.timedelta(days=2)).isoformat()}).json()["items"]
    texts = [i["text"] for i in items]
    assert "deploy billing 4.2.1" in texts and "Odoo 18 upgrade" in texts
    assert any(i["tags"] == ["adjustment", "exclude"] and i["slos"] == ["api"] for i in items)   # adjustments too
    mine = api.get("/api/v1/annotations", params={"slo": "other", "tag": "deploy"}).json()["items"]
    assert mine == []                                                      # the deploy concerns api only
    assert [i["text"] for i in api.get("/api/v1/annotations", params={"tag": "deploy"}).json()["items"]] == [
        "deploy billing 4.2.1"]
    # with the evaluation: the 24 h before `at`; the global upgrade is 30 h old now, inside as of 10 h ago
    docs = {d["name"]: d for d in api.get("/api/v1/slos").json()["slos"]}
    assert [a["text"] for a in docs["api"]["annotations"]] == ["deploy billing 4.2.1"]
    assert docs["other"]["annotations"] == []
    past = (now - dt.timedelta(hours=10)).isoformat()
    docs = {d["name"]: d for d in api.get("/api/v1/slos", params={"at": past}).json()["slos"]}
    assert [a["text"] for a in docs["other"]["annotations"]] == ["Odoo 18 upgrade"]
    from webui.data import slo_detail
    shown = [m.text for m in slo_detail(api.ctx, "api", None, "24h")["marks"]]      # the SLO page's list
    assert "deploy billing 4.2.1" in shown and any(t.startswith("budget adjustment nightly") for t in shown)
    api.ctx.slo.evaluate_and_cache()
    metrics = api.get("/metrics").text
    assert 'revwatch_annotation_time_seconds{id="' in metrics and 'text="deploy billing 4.2.1"' in metrics


def test_revwatch_annotate_cli(tmp_path):
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n" + CFG)
    r = revwatch_cmd("annotate", "incident INC-7 opened", "--config", str(cfg), "--slo", "api", "--tag", "incident",
                     "--at", "2026-12-01T10:00:00Z", "--json", env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["time"] == "2026-12-01T10:00:00+00:00" and doc["slos"] == ["api"] and doc["tags"] == ["incident"]
    bad = revwatch_cmd("annotate", "x", "--config", str(cfg), "--slo", "nope", env={"PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "revwatch: unknown SLO 'nope'", bad.stderr


def test_slo_page_charts_draw_adjustment_bands_and_annotation_lines(api_factory):
    import re
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = (now - dt.timedelta(hours=5)).replace(second=0)                # one occurrence, well inside the axis
    cfg = CFG.replace('start: "2026-01-01T02:00", duration: 30m, rrule: FREQ=DAILY',
                      f'start: "{start:%Y-%m-%dT%H:%M}", duration: 30m')
    assert "rrule" not in cfg
    api = api_factory(cfg)
    note = {"time": (now - dt.timedelta(hours=2)).isoformat(), "text": "deploy <billing> 4.2.1", "slos": ["api"],
            "tags": ["deploy"]}
    assert api.post("/api/v1/annotations", json=note).status_code == 201
    old = {"time": (now - dt.timedelta(days=3)).isoformat(), "text": "long ago", "slos": ["api"]}
    assert api.post("/api/v1/annotations", json=old).status_code == 201
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/"}, follow_redirects=False)
    assert r.status_code == 303
    page = api.client.get("/ui/slos/api?range=24h").text
    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    assert len(charts) == 3
    when = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    for svg in charts:
        # the 30-minute adjustment: one band inside the 24 h axis, its tooltip naming the occurrence
        bands = re.findall(r'<rect class="adj" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>([^<]*)</title>',
                           svg)
        assert len(bands) == 1, bands
        assert bands[0][2].startswith(f"{start:%Y-%m-%d %H:%M} → {start + dt.timedelta(minutes=30):%Y-%m-%d %H:%M} "
                                      f"UTC · budget adjustment nightly: minutes excluded")
        plot = re.search(r'<rect class="plot" x="(\d+)" y="\d+" width="(\d+)"', svg)
        assert plot is not None
        left, width = float(plot[1]), float(plot[2])
        # 30 minutes of a ~24 h axis: about 1/48 of the plot width, inside it
        assert left <= float(bands[0][0]) and float(bands[0][0]) + float(bands[0][1]) <= left + width + 0.1
        assert 0.5 / 26 * width < float(bands[0][1]) < 0.5 / 23 * width
        # the deploy: one marked line with an escaped tooltip; the 3-day-old annotation is outside the axis
        assert svg.count('<g class="note">') == 1
        assert f"<title>{when} UTC · deploy &lt;billing&gt; 4.2.1 [deploy]</title>" in svg
        assert "long ago" not in svg


def test_chart_marks_are_clipped_to_the_axis():
    import re

    from slo.annotations import Annotation
    from webui.charts import line_chart
    t0 = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
    times = [t0 + dt.timedelta(hours=h) for h in range(5)]                 # axis 00:00-04:00 over 654 px from x=56
    marks = [Annotation("a", t0 - dt.timedelta(hours=1), "before and into", tags=("adjustment", "good"),
                        end=t0 + dt.timedelta(hours=1)),
             Annotation("b", t0 + dt.timedelta(hours=3), "into and after", tags=("adjustment", "exclude"),
                        end=t0 + dt.timedelta(hours=9)),
             Annotation("c", t0 + dt.timedelta(hours=5), "outside", end=t0 + dt.timedelta(hours=6)),
             Annotation("d", t0 + dt.timedelta(hours=2), "mid"), Annotation("e", t0 - dt.timedelta(hours=1), "out")]
    svg = str(line_chart(times, {"a": [1.0] * 5}, "t", marks=marks))
    bands = re.findall(r'<rect class="(adj[^"]*)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    assert bands == [("adj adj-good", "56.0", "163.5"), ("adj", "546.5", "163.5")]
    assert svg.count('<g class="note">') == 1 and 'x1="383.0"' in svg and "outside" not in svg and ">out" not in svg
