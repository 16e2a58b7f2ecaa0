/**
 * Runs against a live gateway: SMSGW_TS_URL and SMSGW_TS_API_KEY are set by
 * tests/e2e/test_typescript_client.py, which starts a real server process.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Code,
  LimitExceeded,
  MessageStatus,
  SmsClient,
  SmsError,
  TrafficClass,
  timestampDate,
  type SendMessageResult,
} from "../src/index.js";

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

test("a scheduled OTP comes back with its send time, validity and class; scheduledOnly lists it", async () => {
  const sms = client();
  const sendTime = new Date(Date.now() + 3_600_000);
  const expireTime = new Date(sendTime.getTime() + 5 * 60_000);
  const otp = await sms.send("+16502530000", "Your code is 123456", { trafficClass: "otp", sendTime, expireTime });
  const again = await sms.send("+16502530000", "Your code is 123456", {
    trafficClass: "otp",
    sendTime,
    expireTime,
    idempotencyKey: otp.idempotencyKey,
  });
  const sale = await sms.send("+16502530000", "Flash sale", {
    trafficClass: TrafficClass.MARKETING,
    sendTime,
    ttlMs: 2 * 3_600_000,
  });
  const now = await sms.send("+16502530000", "right away");
  assert.equal(again.id, otp.id);
  assert.equal(otp.idempotencyKey.length, 36);
  assert.equal(otp.trafficClass, TrafficClass.OTP);
  assert.equal(otp.status, MessageStatus.QUEUED);
  assert.equal(timestampDate(otp.sendTime!).getTime(), sendTime.getTime());
  assert.equal(timestampDate(otp.expireTime!).getTime(), expireTime.getTime());
  assert.equal(sale.trafficClass, TrafficClass.MARKETING);
  assert.equal(timestampDate(sale.expireTime!).getTime(), sendTime.getTime() + 2 * 3_600_000);
  assert.equal(now.sendTime, undefined);
  assert.equal(now.trafficClass, TrafficClass.TRANSACTIONAL);

  const scheduled = async () => {
    const ids: string[] = [];
    for await (const m of sms.list({ scheduledOnly: true, pageSize: 1 })) ids.push(m.id);
    return ids;
  };
  const waiting = await scheduled();
  assert.ok(waiting.includes(otp.id) && waiting.includes(sale.id));
  assert.ok(!waiting.includes(now.id));
  await sms.cancel(sale.id);
  const left = await scheduled();
  assert.ok(left.includes(otp.id) && !left.includes(sale.id));
});

test("sendMany takes the same options and stops at an item that fails the check", async () => {
  const sms = client();
  const sendTime = new Date(Date.now() + 3_600_000);
  const items = [
    { to: "+16502530000", body: "reminder", trafficClass: "transactional" as const, sendTime, ttlMs: 30 * 60_000 },
    { to: "+16502530000", body: "both", sendTime, expireTime: sendTime, ttlMs: 60_000 },
    { to: "+16502530000", body: "never sent" },
  ];
  const results: SendMessageResult[] = [];
  await assert.rejects(
    (async () => {
      for await (const result of sms.sendMany(items)) results.push(result);
    })(),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /^sendMany item 1: set expireTime or ttlMs, not both/);
      return true;
    },
  );
  assert.equal(results.length, 1);
  const first = results[0].result;
  assert.ok(first.case === "message");
  assert.equal(first.value.body, "reminder");
  assert.equal(first.value.trafficClass, TrafficClass.TRANSACTIONAL);
  assert.equal(timestampDate(first.value.sendTime!).getTime(), sendTime.getTime());
  assert.equal(timestampDate(first.value.expireTime!).getTime(), sendTime.getTime() + 30 * 60_000);
});

test("timing mistakes are refused before anything is sent", async () => {
  const sms = new SmsClient({ baseUrl: "http://127.0.0.1:1", apiKey: "sk_unused" });
  const refused = (pattern: RegExp) => (error: unknown) => {
    assert.ok(error instanceof TypeError);
    assert.match(error.message, pattern);
    return true;
  };
  const soon = new Date(Date.now() + 60_000);
  await assert.rejects(sms.send("+16502530000", "x", { expireTime: soon, ttlMs: 1000 }), refused(/not both/));
  await assert.rejects(
    sms.send("+16502530000", "x", { sendTime: new Date("not a date") }),
    refused(/sendTime must be a valid Date/),
  );
  await assert.rejects(sms.send("+16502530000", "x", { ttlMs: Number.NaN }), refused(/ttlMs must be a finite/));
  await assert.rejects(
    sms.send("+16502530000", "x", { trafficClass: "promo" as "otp" }),
    refused(/unknown traffic class "promo"/),
  );
});
