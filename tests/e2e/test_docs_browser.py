"""The /docs page in a real headless browser: authorise, try SendMessage, no console errors.

Playwright drives Debian's chromium (playwright cannot download its own
browsers here); .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from playwright.async_api import ConsoleMessage, Page, Request, async_playwright, expect

from tests.conftest import new_tenant_key

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("SMSGW_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary: apt-get install chromium")
async def test_swagger_ui_sends_a_message_with_the_authorised_key(start_server, database_url):
    server = await start_server(rest_enabled=True, relay_enabled=False)
    key = await new_tenant_key(database_url)
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            _record_problems(page, server.rest_url, problems)
            await page.goto(f"{server.rest_url}/docs")
            await _authorise(page, key)
            answer = await _try_send_message(page)
        finally:
            await browser.close()
    assert answer["to"] == "+16502530000" and answer["status"] == "MESSAGE_STATUS_QUEUED"
    assert problems == []


def _record_problems(page: Page, origin: str, problems: list[str]) -> None:
    """Console errors, uncaught exceptions, failed loads, and anything not from the gateway."""
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def on_request(request: Request) -> None:
        if not request.url.startswith(origin):
            problems.append(f"left the gateway: {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("request", on_request)


async def _authorise(page: Page, key: str) -> None:
    await page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    await dialog.get_by_label("auth-bearer-value").fill(key)
    await dialog.get_by_role("button", name="Apply credentials").click()
    await expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()


async def _try_send_message(page: Page) -> dict:
    """Try it out on POST /v1/messages with the document's example; the 200 answer's JSON."""
    operation = page.locator("#operations-SmsService-SendMessage")
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    await expect(operation.locator("textarea.body-param__text")).to_have_value(
        re.compile(r'"to": "\+16502530000"'))
    await operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response").first
    await expect(response.locator(".response-col_status")).to_have_text("200", timeout=15_000)
    return json.loads(await response.locator(".response-col_description pre").first.inner_text())
