"""The TypeScript client (clients/typescript) against a real server: its own node:test suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from smsgw.settings import REPO_ROOT
from tests.conftest import new_tenant_key
from tests.e2e.test_tenant_limits import set_limits

pytestmark = pytest.mark.e2e
PACKAGE = REPO_ROOT / "clients" / "typescript"


@pytest.mark.skipif(shutil.which("npm") is None, reason="Node.js is not installed")
async def test_typescript_client_suite_passes_against_a_live_server(start_server, database_url):
    server = await start_server()
    limited = await new_tenant_key(database_url, "ts-limited")
    await set_limits(server.address, await new_tenant_key(database_url, scopes=("admin",)),
                     "ts-limited", rate_per_second=0.001, burst=1, daily_segment_quota=1)
    env = {**os.environ, "SMSGW_TS_URL": f"http://{server.address}",
           "SMSGW_TS_API_KEY": await new_tenant_key(database_url),
           "SMSGW_TS_LIMITED_KEY": limited}
    run = await asyncio.to_thread(
        subprocess.run, ["npm", "test", "--silent"], cwd=PACKAGE, env=env, capture_output=True,
        text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 8" in run.stdout
