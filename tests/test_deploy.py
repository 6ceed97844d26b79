"""The deployment files, checked without Docker or a cluster.

- ``Dockerfile`` and ``.dockerignore``: read statically (no engine here): named
  stages, a slim base, a numeric non-root USER, a HEALTHCHECK on /healthz,
  ``ENTRYPOINT ["letterbox"]``, the project installed from its wheel.  The health-check
  script the image runs is then run for real against ``letterbox`` processes.
- ``deploy/compose.yaml``: validated against the Compose Specification's JSON
  schema (vendored by the ``check-jsonschema`` package), then its shape.
- ``deploy/kubernetes/``: every manifest validated, strictly, against the
  Kubernetes OpenAPI schemas bundled by ``kubernetes-validate`` (offline: the
  network is cut while it runs), then the cross-references between them.

Both compose and Kubernetes environments are fed through the service's own
``load_settings``: a misspelt variable or a bad value fails here, not at deploy.
"""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import ipaddress
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import msgspec
import pytest
import yaml

from service.settings import PREFIX, Settings, load_settings
from tests.support.processes import settings_env, start_letterbox
from tests.support.smtp import free_port

# Real processes: outside the fast loop (`pytest -m 'not slow'`).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes release the manifests promise to work on, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
LETTERBOX_SERVICES = ("migrate", "api", "worker")


def known_variables() -> set[str]:
    """Every ``LETTERBOX_*`` variable :func:`load_settings` reads."""
    names = {PREFIX + f.name.upper() for f in msgspec.structs.fields(Settings)}
    # The one field whose variable is not its name (``from`` is a Python keyword).
    return (names - {"LETTERBOX_FROM_ADDR"}) | {"LETTERBOX_FROM"}


def check_environment(env: dict[str, str], where: str) -> Settings:
    """The settings an environment gives the service; fails on unknown names or bad values."""
    unknown = {k for k in env if k.startswith(PREFIX)} - known_variables()
    assert not unknown, f"{where}: variables the service does not read: {sorted(unknown)}"
    return load_settings(env)


# ---------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form's arguments; fails if the instruction uses the shell form."""
        parsed = json.loads(self.value)
        assert isinstance(parsed, list), f"{self.keyword} should use the JSON exec form: {self.value}"
        return [str(p) for p in parsed]


@dataclass
class Stage:
    """A FROM and what follows it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions with ``keyword``."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The stage's last ``keyword`` instruction (the one that counts)."""
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, the way the Dockerfile reference reads them."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        # Comments end nowhere special: Docker drops them, even between continuation lines.
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, value = whole.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = instruction.value.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert instruction.keyword == "ARG", f"only ARG may come before the first FROM, not {instruction.keyword}"
            key, _, default = instruction.value.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append(instruction)
    return args, stages


def copy_destinations(stage: Stage) -> dict[str, str]:
    """Each local COPY source of a stage mapped to its absolute destination (WORKDIR applied)."""
    workdir = "/"
    copies: dict[str, str] = {}
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, instruction.value))
        elif instruction.keyword == "COPY":
            words = [w for w in shlex.split(instruction.value) if not w.startswith("--")]
            if "--from" in instruction.value:
                continue
            *sources, dest = words
            for source in sources:
                target = os.path.normpath(os.path.join(workdir, dest))
                copies[source] = os.path.join(target, Path(source).name) if dest.endswith("/") else target
    return copies


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The parsed Dockerfile."""
    return parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_is_multi_stage_on_a_slim_base(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    assert all(s.name for s in stages), "every stage is named, so COPY --from says what it takes"
    build, runtime = stages[0], stages[-1]
    assert build.base == runtime.base, "the venv's python links must point at the same interpreter"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]+)?", runtime.base), runtime.base
    # The final stage copies what the build produced and builds nothing itself.
    assert {i.value.split()[0] for i in runtime.all("COPY")} == {f"--from={build.name}"}
    runs = " ".join(i.value for i in runtime.all("RUN"))
    assert "pip install" not in runs and "apt-get install" not in runs


def test_dockerfile_runs_as_a_numeric_non_root_user(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    user, _, group = runtime.last("USER").value.partition(":")
    # Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
    assert user.isdigit() and int(user) != 0, user
    assert not group or (group.isdigit() and int(group) != 0)
    assert f"--uid {user}" in " ".join(i.value for i in runtime.all("RUN")), "the user exists in the image"
    # The last USER is the one the container runs as: nothing may switch back to root after it.
    assert runtime.instructions.index(runtime.last("USER")) > max(
        runtime.instructions.index(i) for i in runtime.all("RUN")
    )


def test_dockerfile_entrypoint_command_and_healthcheck(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    assert runtime.last("ENTRYPOINT").exec_form() == ["letterbox"]
    assert runtime.last("CMD").exec_form() == ["serve"]
    check = runtime.last("HEALTHCHECK").value
    assert check.split()[-1] != "NONE"
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert "/healthz" in argv
    script = next(a for a in argv if a.endswith(".py"))
    assert (ROOT / Path(script).relative_to("/app")).is_file(), f"{script} is in the repository"
    env = " ".join(i.value for i in runtime.all("ENV"))
    assert "LETTERBOX_HOST=0.0.0.0" in env, "reachable from outside the container"
    assert "LETTERBOX_PORT=8000" in env and runtime.last("EXPOSE").value == "8000"


def test_dockerfile_installs_the_built_wheel(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    build, runtime = stages[0], stages[-1]
    copies = copy_destinations(build)
    runs = " ".join(i.value for i in build.all("RUN"))
    # Installed as users install it (a wheel), never editable: the SQL must come from the package.
    assert "pip wheel" in runs and "pip install --no-deps /tmp/wheels/" in runs
    assert " -e " not in runs, "an editable install hides package data missing from the wheel"
    assert "sql" not in copies, "the SQL ships inside the package, not beside it"
    assert any(i.value.split()[0] == "--from=build" and i.value.split()[1] == "/opt/venv" for i in runtime.all("COPY"))
    for source in copies:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def dockerignore_includes(patterns: list[str], path: str) -> bool:
    """Whether ``path`` reaches the build context (Docker's rules: last match wins; a match on a
    parent folder counts for everything in it; ``**`` matches any number of folders)."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, p) for p in prefixes):
            included = negated
    return included


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "README.md", "deploy/healthcheck.py"]
    needed += [
        str(p.relative_to(ROOT))
        for top in ("service",)
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert any(n.startswith("service/sql/migrations/") for n in needed) and "service/cli.py" in needed
    missing = [n for n in needed if not dockerignore_includes(patterns, n)]
    assert not missing, f"left out of the build context: {missing[:5]}"
    for kept_out in (
        ".venv/bin/python",
        "var/secret",
        ".git/HEAD",
        "tests/conftest.py",
        "bench/send.py",
        "service/__pycache__/cli.cpython-311.pyc",
        "deploy/compose.yaml",
        "letterbox.egg-info/PKG-INFO",
    ):
        assert not dockerignore_includes(patterns, kept_out), kept_out
    # The matcher itself, on Docker's documented cases: last match wins, parents count, ** spans folders.
    assert not dockerignore_includes(["*.pyc"], "x.pyc") and dockerignore_includes(["*.pyc"], "a/x.pyc")
    assert not dockerignore_includes(["**/*.pyc"], "a/b/x.pyc")
    assert dockerignore_includes(["*", "!a"], "a/b/c") and not dockerignore_includes(["*", "!a", "a/b"], "a/b/c")


# ---------------------------------------------------------------------------------------
# The health-check script the image runs, against real processes
# ---------------------------------------------------------------------------------------


def test_healthcheck_script_reads_the_container_command() -> None:
    spec = importlib.util.spec_from_file_location("letterbox_healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # PID 1 as `letterbox serve` runs it, and behind `docker run --init` / compose `init: true`.
    assert module.letterbox_command(["/opt/venv/bin/python", "/opt/venv/bin/letterbox", "serve"]) == "serve"
    assert module.letterbox_command(["/sbin/docker-init", "--", "letterbox", "worker"]) == "worker"
    assert module.letterbox_command(["/opt/venv/bin/python", "/opt/venv/bin/letterbox", "bounce-receiver"]) == (
        "bounce-receiver"
    )
    assert module.letterbox_command([sys.executable, "-m", "service.cli", "serve", "--no-worker"]) == "serve"
    assert module.letterbox_command(["/usr/bin/sleep", "5"]) is None
    assert module.letterbox_command([]) is None
    assert module.http_port(["letterbox", "serve", "--port", "9000"], {"LETTERBOX_PORT": "8000"}) == "9000"
    assert module.http_port(["letterbox", "serve", "--port=9001"], {}) == "9001"
    assert module.http_port(["letterbox", "serve"], {"LETTERBOX_PORT": "8080"}) == "8080"
    assert module.http_port(["letterbox", "serve"], {}) == "8000"
    assert module.http_host({"LETTERBOX_HOST": "0.0.0.0"}) == "127.0.0.1"
    assert module.http_host({"LETTERBOX_HOST": "::"}) == "127.0.0.1"
    assert module.http_host({"LETTERBOX_HOST": "10.0.0.5"}) == "10.0.0.5"
    assert module.http_host({"LETTERBOX_HOST": "fd00::5"}) == "[fd00::5]"


def healthcheck_argv(argv: list[str]) -> list[str]:
    """An image command (``python /app/…``) as it runs from this repository."""
    assert argv[0] == "python", argv
    local = [str(ROOT / Path(a).relative_to("/app")) if a.startswith("/app/") else a for a in argv[1:]]
    return [sys.executable, *local]


def run_check(argv: list[str], pid: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a container health-check command against process ``pid``, as Docker would."""
    return subprocess.run(
        [*healthcheck_argv(argv), "--pid", str(pid)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait; SIGKILL if it will not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_image_healthchecks_against_real_processes(
    settings: Settings, dockerfile: tuple[dict[str, str], list[Stage]], compose: dict[str, Any]
) -> None:
    image_check = json.loads(dockerfile[1][-1].last("HEALTHCHECK").value.partition("CMD ")[2])
    ready_check = compose["services"]["api"]["healthcheck"]["test"]
    assert ready_check[0] == "CMD"
    port = free_port()
    # As in the image: the port comes from LETTERBOX_PORT, nothing on the command line.
    env = settings_env(settings, port=port)
    api = start_letterbox(settings, "serve", "--no-worker", port=port)
    worker = start_letterbox(settings, "worker")
    try:
        deadline = time.monotonic() + 30
        while (result := run_check(image_check, api.pid, env)).returncode != 0:
            assert api.poll() is None, api.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, result.stdout
            time.sleep(0.2)
        assert f"127.0.0.1:{port}/healthz answered 200" in result.stdout
        ready = run_check(ready_check[1:], api.pid, env)
        assert ready.returncode == 0 and "/readyz answered 200" in ready.stdout, ready.stdout
        # A worker serves no HTTP: healthy while it runs, so one image fits every role.
        quiet = run_check(image_check, worker.pid, env)
        assert quiet.returncode == 0 and "worker serves no HTTP" in quiet.stdout, quiet.stdout
        assert worker.poll() is None
        stop(api)
        down = run_check(image_check, api.pid, env)
        assert down.returncode == 1 and "unreachable" in down.stdout, down.stdout
    finally:
        stop(api)
        stop(worker)


# ---------------------------------------------------------------------------------------
# deploy/compose.yaml
# ---------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` interpolation with nothing set: what a bare ``up`` gets."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        op = match.group("op")
        assert op in (":-", "-"), f"{match.group(0)}: every variable needs a default for a plain `up`"
        return str(match.group("arg"))

    return _VARIABLE.sub(substitute, value).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/compose.yaml as Compose sees it after interpolation (YAML merge keys resolved)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(raw, dict)
    return dict(interpolate(raw))


def compose_validator() -> Any:
    """A validator for the Compose Specification's schema, as vendored by check-jsonschema."""
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = compose_validator()
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    # The schema has teeth: a misspelt key or a made-up condition is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["comand"] = ["worker"]
    assert not validator.is_valid(broken)


def test_compose_services_commands_and_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "mailpit", "migrate", "api", "worker"}
    for name in LETTERBOX_SERVICES:
        service = services[name]
        assert service["image"] == services["api"]["image"], "one image for every role"
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["api"]["command"] == ["serve", "--no-worker"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert services["worker"]["depends_on"]["mailpit"] == {"condition": "service_healthy"}
    assert services["api"]["ports"] == ["8000:8000"]


def test_compose_healthchecks(compose: dict[str, Any], dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["mailpit"]["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]
    api_check = services["api"]["healthcheck"]["test"]
    assert api_check[:2] == ["CMD", "python"] and "/readyz" in api_check
    copied = copy_destinations(dockerfile[1][0]).values()
    assert next(a for a in api_check if a.endswith(".py")) in copied, "the script is in the image"
    assert services["migrate"]["healthcheck"] == {"disable": True}
    # Workers keep the image's own check (which reports a running worker healthy).
    assert "healthcheck" not in services["worker"]
    # PostgreSQL 18+ images keep data under /var/lib/postgresql/<major>/docker.
    assert services["postgres"]["image"].startswith("postgres:18")
    assert services["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql"]


def test_compose_environment_is_valid_for_the_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environments = [services[name]["environment"] for name in LETTERBOX_SERVICES]
    assert all(e == environments[0] for e in environments), "every process shares keys, database and relay"
    env = {k: str(v) for k, v in environments[0].items()}
    settings = check_environment(env, "compose.yaml")
    db = urlsplit(settings.database_url or "")
    postgres = services["postgres"]["environment"]
    assert (db.hostname, db.port, db.username, db.path) == ("postgres", 5432, postgres["POSTGRES_USER"], "/letterbox")
    assert db.password == postgres["POSTGRES_PASSWORD"] and postgres["POSTGRES_DB"] == "letterbox"
    smtp = urlsplit(settings.smtp_url or "")
    assert (smtp.hostname, smtp.port) == ("mailpit", 1025)
    assert settings.secret_keys and settings.bootstrap_api_key
    assert settings.log_format == "json"


# ---------------------------------------------------------------------------------------
# deploy/kubernetes
# ---------------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    """Every manifest file (kustomization.yaml is kustomize's, not the API server's)."""
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object, by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in manifest_files():
        for doc in load_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail on any attempt to reach the network: the validator must work from its bundled schemas."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def validate_manifest(doc: dict[str, Any]) -> list[str]:
    """Validate one object strictly (unknown fields are errors) against each Kubernetes version."""
    return [kubernetes_validate.validate(doc, version, strict=True) for version in KUBERNETES_VERSIONS]


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    documents = load_documents(path)
    assert documents, f"{path.name} is empty"
    errors: list[str] = []
    for doc in documents:
        try:
            validate_manifest(doc)
        except kubernetes_validate.ValidationError as exc:
            # One line per error, not the schema dump a bare jsonschema error prints.
            where = ".".join(map(str, exc.path)) or "(top)"
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            errors.append(f"{path.name}: {name} at {where}: {exc.message} (Kubernetes {exc.version})")
    assert not errors, "\n".join(errors)


@pytest.mark.usefixtures("no_network")
def test_the_validator_refuses_broken_manifests(tmp_path: Path) -> None:
    deployment = load_documents(KUBERNETES / "api-deployment.yaml")[0]
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = misspelt["spec"]["template"]["spec"][
        "containers"
    ][0].pop("readinessProbe")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    no_selector = copy.deepcopy(deployment)
    del no_selector["spec"]["selector"]
    for broken in (misspelt, wrong_type, no_selector):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate_manifest(broken)
    # The same through the file-level entry point (what a CLI run would do): non-zero status.
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(wrong_type))
    assert kubernetes_validate.validate_file(str(tmp_path / "broken.yaml"), KUBERNETES_VERSIONS[0], True, True, True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [p.name for p in manifest_files()]
    assert [i["name"] for i in kustomization["images"]] == ["letterbox"]


def pod_specs(resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod template of every workload, by name."""
    return {
        name: doc["spec"]["template"]["spec"]
        for (kind, name), doc in resources.items()
        if kind in ("Deployment", "Job")
    }


def test_kubernetes_workloads(
    resources: dict[tuple[str, str], dict[str, Any]], dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    kinds = Counter(kind for kind, _ in resources)
    assert kinds == {"ConfigMap": 1, "Secret": 2, "Job": 1, "Deployment": 2, "Service": 1, "PodDisruptionBudget": 2}
    image_uid = int(dockerfile[1][-1].last("USER").value.split(":")[0])
    specs = pod_specs(resources)
    commands = {name: [c["args"] for c in spec["containers"]] for name, spec in specs.items()}
    assert commands == {
        "letterbox-api": [["serve", "--no-worker"]],
        "letterbox-worker": [["worker"]],
        "letterbox-migrate": [["migrate"]],
    }
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == image_uid, f"{name}: the image's user"
        for container in spec["containers"]:
            assert container["image"].split(":")[0] == "letterbox", "kustomization.yaml's images rewrites it"
            for part in ("requests", "limits"):
                assert set(container["resources"][part]) == {"cpu", "memory"}, f"{name}: {part}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            for source in container["envFrom"]:
                ref = source.get("configMapRef") or source["secretRef"]
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                assert (kind, ref["name"]) in resources, f"{name} reads the missing {kind} {ref['name']}"
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, "a writable /tmp"
    assert resources[("Job", "letterbox-migrate")]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_kubernetes_api_probes_service_and_budgets(resources: dict[tuple[str, str], dict[str, Any]]) -> None:
    api = resources[("Deployment", "letterbox-api")]
    worker = resources[("Deployment", "letterbox-worker")]
    container = api["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" not in worker["spec"]["template"]["spec"]["containers"][0], "a worker serves no HTTP"
    for deployment in (api, worker):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = resources[("Service", "letterbox-api")]
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= worker_labels.items(), "the Service reaches API pods only"
    assert service["spec"]["ports"][0]["targetPort"] in ports
    budgets = {name: doc for (kind, name), doc in resources.items() if kind == "PodDisruptionBudget"}
    assert set(budgets) == {"letterbox-api", "letterbox-worker"}
    for name, budget in budgets.items():
        pods = resources[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items(), name
    assert budgets["letterbox-api"]["spec"]["minAvailable"] < api["spec"]["replicas"], "a drain can proceed"


def test_kubernetes_configuration_is_valid_for_the_service(resources: dict[tuple[str, str], dict[str, Any]]) -> None:
    config = resources[("ConfigMap", "letterbox")]["data"]
    secret = resources[("Secret", "letterbox")]["stringData"]
    assert not set(config) & set(secret), "each variable in one place"
    for name in ("LETTERBOX_DATABASE_URL", "LETTERBOX_SMTP_URL", "LETTERBOX_SECRET_KEYS"):
        assert name in secret, f"{name} is a secret"
    settings = check_environment({**config, **secret}, "ConfigMap and Secret")
    assert settings.public_url.startswith("https://"), "RFC 8058 one-click unsubscribe needs HTTPS"
    assert settings.host == "0.0.0.0" and settings.port == 8000 and settings.log_format == "json"
    assert settings.bounce_domain and settings.database_url and settings.smtp_url
    assert settings.bootstrap_api_key is None, "no bootstrap key in production manifests"
    # Turning DKIM on (the commented lines) must point at the file the worker mounts.
    dkim_file = re.search(r"LETTERBOX_DKIM_KEY_FILE: (\S+)", (KUBERNETES / "configmap.yaml").read_text())
    assert dkim_file is not None
    worker = resources[("Deployment", "letterbox-worker")]["spec"]["template"]["spec"]
    mount = next(m for m in worker["containers"][0]["volumeMounts"] if m["name"] == "dkim")
    assert Path(dkim_file.group(1)).parent == Path(mount["mountPath"])
    dkim_volume = next(v for v in worker["volumes"] if v["name"] == "dkim")
    assert (dkim_volume["secret"]["secretName"], Path(dkim_file.group(1)).name) == ("letterbox-dkim", "dkim.pem")
    assert "dkim.pem" in resources[("Secret", "letterbox-dkim")]["stringData"]


def test_kubernetes_trusts_the_ingress_and_exposes_metrics(resources: dict[tuple[str, str], dict[str, Any]]) -> None:
    config = resources[("ConfigMap", "letterbox")]["data"]
    settings = check_environment({**config, **resources[("Secret", "letterbox")]["stringData"]}, "ConfigMap")
    # Behind the Ingress the client address comes from X-Forwarded-For, sent by the controller's pods:
    # the usual pod networks must be trusted (not only loopback), and not everybody ("*").
    assert settings.trusted_proxies != "*"
    networks = [ipaddress.ip_network(item.strip()) for item in settings.trusted_proxies.split(",")]
    for pod in ("10.244.1.7", "10.42.0.12", "10.8.3.4"):  # kubeadm/Flannel, k3s, GKE
        assert any(ipaddress.ip_address(pod) in net for net in networks), pod
    assert not any(ipaddress.ip_address("203.0.113.9") in net for net in networks), "no public address"
    # Workers export metrics on LETTERBOX_METRICS_PORT, declared and annotated on their pods; the API on its port.
    assert settings.metrics_port is not None
    worker = resources[("Deployment", "letterbox-worker")]["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in worker["spec"]["containers"][0]["ports"]}
    assert ports == {"metrics": settings.metrics_port}
    assert worker["metadata"]["annotations"]["prometheus.io/port"] == str(settings.metrics_port)
    api = resources[("Deployment", "letterbox-api")]["spec"]["template"]
    assert api["metadata"]["annotations"]["prometheus.io/port"] == str(settings.port)
    for template in (worker, api):
        assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
