"""deploy/grafana/scoreboard.json: every panel queries metrics a real app exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from tests.api.conftest import make_settings
from tests.conftest import lifespan

from scoreboard.app import create_app

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "scoreboard.json"
# PromQL's functions, aggregations and keywords: the names in an expression that are not metrics.
PROMQL = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers that are neither a function call
    nor a keyword, once label matchers, grouping clauses, ranges and strings are removed."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in NAME.finditer(expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL:
            continue
        names.add(match.group())
    return names


def exposed(text: str) -> set[str]:
    """Every series name `/metrics` declares (a labelled metric with no child yet included)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_metric_names_are_found() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{job="$job"}[1m]))) / b'
    assert metric_names(expr) == {"a_bucket", "b"}


async def test_every_panel_queries_an_exposed_metric(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    assert all(p["targets"] for p in dashboard["panels"])
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}", tmp_path))
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body = {"username": "dash", "password": "correct horse"}
            await http.post("/api/v1/auth/register", json=body)
            token = (await http.post("/api/v1/auth/login", json=body)).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(3):
                r = await http.post(
                    "/api/v1/scores/events", json={"action_type": "TASK_COMPLETED"}, headers=auth
                )
                assert r.status_code == 201
            await http.get("/api/v1/leaderboard")
            names = exposed((await http.get("/metrics")).text)
    missing = [(t, name) for t, expr in exprs for name in metric_names(expr) if name not in names]
    assert not missing, f"panels query metrics the app does not expose: {sorted(missing)}"
