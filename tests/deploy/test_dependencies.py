"""Every declared dependency is real: bounded below its next major version, pinned in
constraints.txt at a version inside its bounds, and imported by the code that declares it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Distribution name -> the module it is imported as, where they differ.
MODULES = {
    "pyjwt": "jwt",
    "fastapi-offline": "fastapi_offline",
    "opentelemetry-api": "opentelemetry",
    "opentelemetry-sdk": "opentelemetry",
    "opentelemetry-exporter-otlp-proto-http": "opentelemetry",
    "prometheus-client": "prometheus_client",
    "pydantic-settings": "pydantic_settings",
    "pytest-asyncio": "pytest_asyncio",
    "pytest-timeout": "pytest_timeout",
    "pytest-xdist": "xdist",
    "asgi-lifespan": "asgi_lifespan",
    "pyyaml": "yaml",
    "sqlalchemy": "sqlalchemy",
}
# Used as programs or plugins, not imported: the linters/type checker CI runs, and pytest
# plugins pytest loads by entry point.
# Bounded tighter than the next major, with the reason in pyproject.toml.
TIGHTER = {"uvicorn": "0.56"}
NOT_IMPORTED = {"ruff", "mypy", "pytest-timeout", "pytest-asyncio"}


def requirements(group: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in group]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version
    return found


def imported(*folders: str) -> set[str]:
    modules = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    return modules


def test_every_dependency_has_an_upper_bound_and_a_pin_inside_it() -> None:
    pinned = pins()
    declared = requirements(PROJECT["dependencies"]) + requirements(
        PROJECT["optional-dependencies"]["test"]
    )
    for req in declared:
        uppers = [spec for spec in req.specifier if spec.operator == "<"]
        assert uppers, f"{req} has no upper bound"
        version = pinned.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(version), f"constraints.txt {req.name}=={version} vs {req}"
        major = int(version.split(".")[0])  # the known-good release's next major
        bound = TIGHTER.get(canonicalize_name(req.name), str(major + 1))
        assert uppers[0].version == bound, f"{req}: bound is not {bound}"


def drivers() -> set[str]:
    """Drivers SQLAlchemy loads from a URL (`sqlite+aiosqlite://`) rather than by import."""
    text = "".join(path.read_text() for path in (ROOT / "src").rglob("*.py"))
    return set(re.findall(r"\+(\w+):///?", text))


def test_every_declared_dependency_is_imported() -> None:
    runtime = imported("src") | drivers()
    for req in requirements(PROJECT["dependencies"]):
        module = MODULES.get(canonicalize_name(req.name), re.sub("-", "_", req.name.lower()))
        assert module in runtime, f"{req.name} is declared but src/ never imports {module}"
    testing = imported("tests", "bench")
    for req in requirements(PROJECT["optional-dependencies"]["test"]):
        name = canonicalize_name(req.name)
        if name in NOT_IMPORTED:
            continue
        module = MODULES.get(name, name.replace("-", "_"))
        assert module in testing, f"{req.name} is a test dependency nobody imports"
