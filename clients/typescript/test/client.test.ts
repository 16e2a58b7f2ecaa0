/**
 * Runs against a live gateway: SMSGW_TS_URL and SMSGW_TS_API_KEY are set by
 * tests/e2e/test_typescript_client.py, which starts a real server process.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, LimitExceeded, MessageStatus, SmsClient, SmsError } from "../src/index.js";

const baseUrl = process.env.SMSGW_TS_URL ?? "";
const apiKey = process.env.SMSGW_TS_API_KEY ?? "";
// A tenant limited to one message now and a daily quota of one segment.
const limitedKey = process.env.SMSGW_TS_LIMITED_KEY ?? "";
const client = () => new SmsClient({ baseUrl, apiKey });

test("send, replay by key, watch to the end, get and list", async () => {
  const sms = client();
  const message = await sms.send("+16502530000", "Your code is 123456", { clientReference: "otp" });
  const again = await sms.send("+16502530000", "Your code is 123456", {
    clientReference: "otp",
    idempotencyKey: message.idempotencyKey,
  });
  assert.equal(again.id, message.id);
  assert.equal(message.idempotencyKey.length, 36);

  const statuses: MessageStatus[] = [];
  for await (const event of sms.watch([message.id])) statuses.push(event.status);
  assert.deepEqual(statuses, [
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
  ]);
  assert.equal((await sms.get(message.id)).status, MessageStatus.DELIVERED);
  const listed: string[] = [];
  for await (const m of sms.list({ pageSize: 1 })) listed.push(m.id);
  assert.ok(listed.includes(message.id));
});

test("errors carry the code, the reason and the fields", async () => {
  const sms = client();
  await assert.rejects(sms.send("+1", ""), (error: unknown) => {
    assert.ok(error instanceof SmsError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.reason, "INVALID_ARGUMENT");
    assert.deepEqual(error.violations.map((v) => v.field).sort(), ["body", "to"]);
    return true;
  });
  const unauthenticated = new SmsClient({ baseUrl, apiKey: "sk_wrong" });
  await assert.rejects(unauthenticated.get("00000000-0000-7000-8000-000000000000"), (error: unknown) => {
    assert.ok(error instanceof SmsError);
    assert.equal(error.code, Code.Unauthenticated);
    return true;
  });
});

test("sendMany answers every item once, in order, with bounded chunks in flight", async () => {
  const sms = client();
  const items = Array.from({ length: 620 }, (_, i) => ({
    to: i % 5 === 0 ? "bad" : "+16502530000",
    body: `n${i}`,
    clientReference: String(i),
  }));
  const results = [];
  for await (const result of sms.sendMany(items, { chunkSize: 100, maxInFlight: 200 })) results.push(result);
  assert.deepEqual(
    results.map((r) => Number(r.index)),
    items.map((_, i) => i),
  );
  assert.deepEqual(
    results.map((r) => r.clientReference),
    items.map((_, i) => String(i)),
  );
  assert.equal(results.filter((r) => r.result.case === "error").length, 124);
});

test("watch resumes after a cursor without gaps or repeats", async () => {
  const sms = client();
  const message = await sms.send("+16502530000", "resume me");
  const seen: MessageStatus[] = [];
  let cursor = "";
  for await (const event of sms.watch([message.id])) {
    seen.push(event.status);
    cursor = event.cursor;
    if (seen.length === 2) break; // hang up part-way
  }
  for await (const event of sms.watch([message.id], { afterCursor: cursor })) seen.push(event.status);
  assert.deepEqual(seen, [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED]);
});

test("a tenant limit is a LimitExceeded carrying the retry delay and the reason", async () => {
  const sms = new SmsClient({ baseUrl, apiKey: limitedKey });
  await sms.send("+16502530000", "the one that fits");
  await assert.rejects(sms.send("+16502530000", "one too many"), (error: unknown) => {
    assert.ok(error instanceof LimitExceeded);
    assert.equal(error.code, Code.ResourceExhausted);
    assert.ok(error.rateLimited || error.quotaExceeded);
    assert.ok((error.retryAfterMs ?? 0) > 0);
    return true;
  });
  const usage = await sms.usage();
  assert.equal(usage.daily?.usedSegments, 1n);
  assert.equal(usage.daily?.limitSegments, 1n);
});
