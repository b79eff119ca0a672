"""The package as users get it: ``python -m build`` makes an sdist and a wheel that
``twine check`` accepts; the wheel, installed with its dependencies in a fresh virtualenv,
serves an app with ``bocadillo run`` (the JavaScript client included) and runs
``create_client``; the metadata (version, Python versions, URLs, dependencies) agrees with
the code, the tool settings and the README.

The build starts from a copy of the files git knows (tracked, or new and not ignored), as a
release from a clean checkout would: nothing left in the work tree by an earlier build
(``build/``, ``*.egg-info``) can slip into the archives. The virtualenv's pip installs the
dependencies from the package index the machine is configured with.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from websockets.sync.client import connect

import bocadillo
from bocadillo import App, MissingDependency, create_client
from tests.docs_examples import blocks
from tests.uvicorn_process import BocadilloRun, bocadillo_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
VERSION = bocadillo.__version__
#: Seconds allowed to one step (a build, an install, a server's startup).
STEP_TIMEOUT = 180.0

APP = """\
from bocadillo import App

app = App()


@app.route("/items/{pk}")
async def item(req, res, pk: int, verbose: bool = False):
    res.json = {"pk": pk, "verbose": verbose}


@app.websocket_route("/echo")
async def echo(ws):
    async for message in ws:
        await ws.send(f"You said: {message}")


@app.socket("ping")
async def ping(data):
    return {"pong": data}
"""

CREATE_CLIENT = """\
from bocadillo import App, create_client

app = App()


@app.route("/")
async def index(req, res):
    res.json = {"ok": True}


@app.socket("ping")
async def ping(data):
    return {"pong": data}


with create_client(app) as client:
    assert client.get("/").json() == {"ok": True}
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "ping", "data": 1, "id": "a"})
        assert ws.receive_json() == {"type": "response", "data": {"pong": 1}, "id": "a"}
print("create_client: ok")
"""


def clean_env() -> dict[str, str]:
    """The environment for the subprocesses: nothing points them back at this checkout or
    this virtualenv, and asyncio's debug mode stays off in the server."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONASYNCIODEBUG", "PYTHONHOME"):
        env.pop(name, None)
    return env


def serve(venv: Path, cwd: Path) -> BocadilloRun:
    """``bocadillo run app:app`` of the fresh virtualenv, in ``cwd``."""
    return bocadillo_run(
        "app:app",
        cwd / "server.log",
        command=venv / "bin/bocadillo",
        cwd=cwd,
        env=clean_env(),
        inherit_env=False,
    )


def run(args: Sequence[str | Path], cwd: Path) -> str:
    """Run a command to its end (bounded); its output, or a failure that shows it."""
    try:
        done = subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{args} took more than {STEP_TIMEOUT}s:\n{exc.output}") from exc
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


def source_files() -> list[str]:
    """The files of the project that a release contains: those git knows about."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], ROOT)
    return [name for name in listed.splitlines() if (ROOT / name).is_file()]


@dataclass
class Dists:
    sdist: Path
    wheel: Path
    sources: list[str]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """``python -m build`` on a clean copy of the project: the sdist, then the wheel
    built from the sdist (so a file missing from the sdist is missing from the wheel)."""
    base = tmp_path_factory.mktemp("dist")
    tree, out = base / "src", base / "out"
    sources = source_files()
    for name in sources:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    run([sys.executable, "-m", "build", "--outdir", out, tree], base)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(sdist, wheel, sources)


@pytest.fixture(scope="module")
def venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies (no extra) installed."""
    path = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", path], path.parent)
    run([path / "bin" / "python", "-m", "pip", "install", "--quiet", dists.wheel], path.parent)
    return path


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"bocadillo-{VERSION}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower()


def test_dists_pass_twine_check(dists):
    report = run(
        [sys.executable, "-m", "twine", "check", "--strict", dists.sdist, dists.wheel], ROOT
    )
    assert report.count("PASSED") == 2, report


def test_dists_are_named_by_the_version_in_the_code(dists):
    assert dists.sdist.name == f"bocadillo-{VERSION}.tar.gz"
    assert dists.wheel.name == f"bocadillo-{VERSION}-py3-none-any.whl"
    assert wheel_metadata(dists.wheel)["Version"] == VERSION


def test_wheel_holds_the_package_its_data_and_the_license(dists):
    with zipfile.ZipFile(dists.wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("bocadillo/client.js") == (ROOT / "clients/js/client.js").read_bytes()
        entry_points = archive.read(f"bocadillo-{VERSION}.dist-info/entry_points.txt").decode()
    info = f"bocadillo-{VERSION}.dist-info"
    # Only the package: no tests, docs, example or benchmark in site-packages.
    assert {name.split("/")[0] for name in names} == {"bocadillo", info}
    package = {name for name in dists.sources if name.startswith("bocadillo/")}
    assert package <= names, package - names
    assert {"bocadillo/py.typed", "bocadillo/client.js", f"{info}/licenses/LICENSE"} <= names
    assert "bocadillo = bocadillo.cli:main" in entry_points


def test_sdist_holds_what_the_wheel_is_built_from(dists):
    prefix = f"bocadillo-{VERSION}/"
    with tarfile.open(dists.sdist) as archive:
        names = {member.name.removeprefix(prefix) for member in archive.getmembers()}
    package = {name for name in dists.sources if name.startswith("bocadillo/")}
    assert package <= names, package - names
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.cfg", "PKG-INFO"} <= names


def test_metadata_python_versions_agree_with_the_code_and_the_tools(dists):
    metadata = wheel_metadata(dists.wheel)
    floor = metadata["Requires-Python"]
    match = re.fullmatch(r">=3\.(\d+)", floor)
    assert match, floor
    minimum = int(match.group(1))
    minors = sorted(
        int(classifier.rsplit(".", 1)[1])
        for classifier in metadata.get_all("Classifier", [])
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    )
    # Every minor version from the floor to the newest one claimed, the one that runs
    # this suite (CI's) among them.
    assert minors == list(range(minimum, minors[-1] + 1))
    assert sys.version_info[1] in minors
    tools = (ROOT / "pyproject.toml").read_text()
    assert f'python_version = "3.{minimum}"' in tools  # mypy checks the floor's typing
    assert f'target-version = "py3{minimum}"' in tools  # ruff keeps its syntax


def test_metadata_describes_the_project(dists):
    metadata = wheel_metadata(dists.wheel)
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload() == (ROOT / "README.md").read_text()
    assert metadata["License-Expression"] == "MIT"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL", []))
    assert set(urls) == {"Source", "Documentation", "Issues"}
    assert all(url.startswith("https://") for url in urls.values())
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])


def test_every_dependency_has_its_reason_in_the_readme(dists):
    """The README's dependency table names each runtime dependency and each extra's
    (but the development extra's, listed in a sentence below it)."""
    readme = (ROOT / "README.md").read_text()
    requirements = wheel_metadata(dists.wheel).get_all("Requires-Dist", [])
    names = {
        requirement_name(requirement)
        for requirement in requirements
        if 'extra == "dev"' not in requirement
    }
    assert "httpx2" in names  # create_client works after a plain install
    missing = {
        name for name in names if not re.search(rf"`{re.escape(name)}(\[\w+\])?`", readme, re.I)
    }
    assert not missing, f"not in the README's dependency table: {sorted(missing)}"


def test_fresh_install_serves_an_app_with_bocadillo_run(venv, tmp_path):
    (tmp_path / "app.py").write_text(APP)
    # The bocadillo that serves is the installed one, not this checkout.
    location = run(
        [venv / "bin/python", "-c", "import bocadillo; print(bocadillo.__file__)"], tmp_path
    )
    assert Path(location.strip()).is_relative_to(venv)
    server = serve(venv, tmp_path)
    try:
        url = f"http://127.0.0.1:{server.port}"
        response = httpx.get(url + "/items/42?verbose=true", timeout=10)
        assert response.json() == {"pk": 42, "verbose": True}
        assert httpx.get(url + "/items/abc", timeout=10).status_code == 400
        script = httpx.get(url + "/bocadillo/client.js", timeout=10)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.content == (ROOT / "clients/js/client.js").read_bytes()
        ws_url = f"ws://127.0.0.1:{server.port}"
        with connect(ws_url + "/echo", open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "You said: hi"
        with connect(ws_url + "/ws", open_timeout=10) as ws:
            ws.send('{"type": "ping", "data": 7, "id": "1"}')
            assert json.loads(ws.recv(timeout=10)) == {
                "type": "response",
                "data": {"pong": 7},
                "id": "1",
            }
    finally:
        status = server.stop()
    # A graceful stop: uvicorn ran the shutdown, then exited by the signal it was sent.
    assert status in (0, -signal.SIGTERM), server.log.read_text()
    assert "Application shutdown complete" in server.log.read_text()


def test_fresh_install_serves_the_readme_app(venv, tmp_path):
    """The README's two-file chat, as a reader saves it, served by the installed package."""
    files = {path: source for lang, path, source, _ in blocks("README.md", base=ROOT) if path}
    assert set(files) == {"app.py", "index.html"}
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    server = serve(venv, tmp_path)
    try:
        page = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=10)
        assert page.status_code == 200
        assert page.text == files["index.html"]
        ws_url = f"ws://127.0.0.1:{server.port}/ws"
        with connect(ws_url, open_timeout=10) as ann, connect(ws_url, open_timeout=10) as bob:
            for n, ws in enumerate((ann, bob), start=1):
                ws.send(json.dumps({"type": "join", "data": "lobby", "id": n}))
                reply = json.loads(ws.recv(timeout=10))
                assert reply == {"type": "response", "data": {"members": n}, "id": n}
            said = {"type": "say", "data": {"room": "lobby", "text": "hello"}}
            ann.send(json.dumps(said))
            for ws in (ann, bob):
                message = json.loads(ws.recv(timeout=10))
                assert (message["type"], message["data"]) == ("said", {"text": "hello"})
    finally:
        status = server.stop()
    assert status in (0, -signal.SIGTERM), server.log.read_text()


def test_fresh_install_runs_create_client_with_no_extra(venv, tmp_path):
    (tmp_path / "check.py").write_text(CREATE_CLIENT)
    output = run([venv / "bin/python", "-W", "error", "check.py"], tmp_path)
    assert output.strip() == "create_client: ok"


def test_create_client_without_httpx2_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx2", None)  # the import fails
    with pytest.raises(MissingDependency, match=r"pip install httpx2"):
        create_client(App())
