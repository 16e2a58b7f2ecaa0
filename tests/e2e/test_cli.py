"""What the ``smsgw`` command and the client README show a person: REST's JSON, names, notes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from smsgw.settings import REPO_ROOT
from tests.conftest import new_tenant_key

pytestmark = pytest.mark.e2e


async def smsgw(server, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMSGW_API_KEY": key, "SMSGW_GRPC_ADDRESS": server.address,
           "SMSGW_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "smsgw", *args], env=env, capture_output=True,
        text=True, timeout=60, check=False)


def rest_get(url: str, key: str) -> dict:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def test_send_prints_the_json_rest_answers(start_server, database_url):
    server = await start_server(rest_enabled=True, relay_enabled=False)  # it stays QUEUED
    key = await new_tenant_key(database_url)
    sent = await smsgw(server, key, "send", "--to", "+16502530000", "--body", "Hi")
    assert (sent.returncode, sent.stderr) == (0, "")
    printed = json.loads(sent.stdout)
    answered = await asyncio.to_thread(
        rest_get, f"{server.rest_url}/v1/messages/{printed['id']}", key)
    assert printed == answered
    assert printed["status"] == "MESSAGE_STATUS_QUEUED"
    assert "idempotency_key" in printed


async def test_empty_lists_say_so_on_stderr(start_server, database_url):
    server = await start_server(relay_enabled=False)
    key = await new_tenant_key(database_url, scopes=("send", "admin"))
    dead = await smsgw(server, key, "dlq", "list")
    replayed = await smsgw(server, key, "dlq", "replay", "--pending")
    hooks = await smsgw(server, key, "webhook", "list")
    assert (dead.returncode, dead.stdout, dead.stderr) == (0, "", "no dead letters\n")
    assert (replayed.stdout, replayed.stderr) == ("", "no dead letters to replay\n")
    assert (hooks.returncode, hooks.stderr) == (0, "no webhook endpoints\n")
    assert json.loads(hooks.stdout) == {"endpoints": []}


def readme_example(readme: Path) -> str:
    """The README's first Python block, its top-level ``async with`` inside a coroutine."""
    block = re.search(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    imports = [line for line in lines if line.startswith(("from ", "import "))]
    body = textwrap.indent("\n".join(line for line in lines if line not in imports), "    ")
    return "\n".join(["import asyncio, os", *imports, "KEY = os.environ['KEY']",
                      "async def main():", body, "asyncio.run(main())"])


async def test_the_client_readme_example_prints_status_names(start_server, database_url):
    server = await start_server()
    code = readme_example(REPO_ROOT / "clients" / "python" / "README.md")
    code = code.replace('"sms-gateway:50051"', repr(server.address))
    env = {**os.environ, "KEY": await new_tenant_key(database_url)}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], env=env,
                                   capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["MESSAGE_STATUS_QUEUED", "MESSAGE_STATUS_SENDING",
                                   "MESSAGE_STATUS_SENT", "MESSAGE_STATUS_DELIVERED"]
