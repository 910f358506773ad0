"""compose.yaml and deploy/nginx.conf: two service processes behind nginx, on PostgreSQL and
Redis. `docker compose config` validates it where docker compose is installed; everywhere, a
structural check of the services, ports, settings and the nginx upstream."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoreboard.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_two_processes_behind_nginx_on_postgres_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"scoreboard-1", "scoreboard-2", "nginx", "postgres", "redis"}
    for name in ("scoreboard-1", "scoreboard-2"):
        service = services[name]
        env = service["environment"]
        assert env["SCOREBOARD_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["SCOREBOARD_DATABASE_URL"]
        assert env["SCOREBOARD_REDIS_URL"] == "redis://redis:6379/0"
        assert env["SCOREBOARD_JWT_SECRET"].startswith("${SCOREBOARD_JWT_SECRET:?")
        known = {"SCOREBOARD_" + field.upper() for field in Settings.model_fields}
        assert set(env) <= known, set(env) - known  # every variable is a real setting
        assert service["command"][:2] == ["scoreboard", "serve"]
        assert "--host=0.0.0.0" in service["command"] and "--proxy-headers" in service["command"]
        assert set(service["depends_on"]) == {"postgres", "redis"}
    assert services["nginx"]["ports"] == ["8080:80"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


def test_nginx_passes_the_websocket_upgrade_to_both_processes() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream scoreboard \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server (scoreboard-\d):8000", upstream.group(1))
    assert servers == ["scoreboard-1", "scoreboard-2"]
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "proxy_http_version 1.1;" in conf
    assert "$request " not in conf and '"$request"' not in conf  # no query strings (tokens)


def test_the_image_runs_serve_on_all_interfaces() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -c constraints.txt ." in dockerfile
    assert 'CMD ["scoreboard", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert re.search(r"^USER scoreboard$", dockerfile, re.M)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed (the structural checks above still ran)",
)
def test_docker_compose_config_accepts_it() -> None:
    env = {**os.environ, "SCOREBOARD_JWT_SECRET": "x" * 48}
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
