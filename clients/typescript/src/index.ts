/**
 * Client for the Ghasi SMS Gateway, for Node services (NestJS platforms).
 *
 * The generated stubs (protobuf-es + Connect, gRPC protocol) are re-exported;
 * SmsClient adds what every caller would otherwise write again: API-key auth,
 * idempotency keys fixed before the first attempt (so retries never send
 * twice), retries on UNAVAILABLE with backoff and full jitter, deadlines, a
 * bulk helper with bounded in-flight items, and a watch that resumes from its
 * last cursor. Sends take a traffic class, a send time and a validity as plain
 * values (a name or the enum, Dates, milliseconds).
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import {
  type Message,
  type MessageStatus,
  type SendMessageRequest,
  SendMessageRequestSchema,
  type SendMessageResult,
  SendMessagesRequestSchema,
  SmsService,
  type StatusEvent,
  TrafficClass,
  type Usage,
  WatchEndReason,
} from "./gen/ghasi/sms/v1/sms_pb.js";

export * from "./gen/ghasi/sms/v1/sms_pb.js";
export { Code } from "@connectrpc/connect";
/** Reads a message's sendTime / expireTime (google.protobuf.Timestamp) as a Date. */
export { timestampDate } from "@bufbuild/protobuf/wkt";

export interface RetryPolicy {
  maxAttempts: number;
  baseMs: number;
  capMs: number;
}

export interface SmsClientOptions {
  /** The gateway's gRPC address, e.g. "http://sms-gateway:50051". */
  baseUrl: string;
  apiKey: string;
  /** Deadline of each unary call. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export interface SendOptions {
  sender?: string;
  clientReference?: string;
  metadata?: Record<string, string>;
  /** Default: a new UUID, fixed before the first attempt. */
  idempotencyKey?: string;
  /**
   * The priority lane (OTP before transactional before marketing, so a marketing backlog
   * never delays a login code) and possibly the route. Unset means transactional.
   */
  trafficClass?: TrafficClass | TrafficClassName;
  /**
   * Send at this time rather than now. The gateway keeps the message durably until then
   * (across restarts), and cancel() stops it until it leaves.
   */
  sendTime?: Date;
  /**
   * The end of the validity: not handed to a provider by then, the message ends EXPIRED
   * rather than arrive late. Set at most one of expireTime and ttlMs; with neither, the
   * traffic class's default applies (OTP: 10 minutes).
   */
  expireTime?: Date;
  /** The validity as milliseconds from sendTime (or from now), to the whole millisecond. */
  ttlMs?: number;
  timeoutMs?: number;
}

/** A traffic class by name, as configuration tends to hold it. */
export type TrafficClassName = "otp" | "transactional" | "marketing";

export type SendItem = { to: string; body: string } & Omit<SendOptions, "timeoutMs">;

export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * A failed call: the gRPC code, the server's ErrorInfo reason and metadata, field violations,
 * and when to retry (google.rpc.RetryInfo) if the server said.
 */
export class SmsError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly reason = "",
    readonly violations: FieldViolation[] = [],
    /** The server's RetryInfo in milliseconds; undefined when it sent none. */
    readonly retryAfterMs?: number,
    readonly metadata: Record<string, string> = {},
  ) {
    super(`${Code[code]}: ${message}`);
    this.name = "SmsError";
  }

  static from(error: unknown): SmsError {
    const failure = ConnectError.from(error);
    const info = failure.findDetails(ErrorInfoSchema)[0];
    const violations = failure
      .findDetails(BadRequestSchema)
      .flatMap((bad) => bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    const delay = failure.findDetails(RetryInfoSchema)[0]?.retryDelay;
    const retryAfterMs = delay ? Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6) : undefined;
    const Kind = failure.code === Code.ResourceExhausted ? LimitExceeded : SmsError;
    return new Kind(failure.code, failure.rawMessage, info?.reason ?? "", violations, retryAfterMs, {
      ...(info?.metadata ?? {}),
    });
  }
}

/**
 * RESOURCE_EXHAUSTED: a tenant limit said "not now". `reason` is RATE_LIMITED (retry after
 * `retryAfterMs`) or QUOTA_EXCEEDED (a segment quota is used up until `resetTime`). Not retried
 * by the client: a retry sooner than `retryAfterMs` is refused again.
 */
export class LimitExceeded extends SmsError {
  override name = "LimitExceeded";

  get rateLimited(): boolean {
    return this.reason === "RATE_LIMITED";
  }

  get quotaExceeded(): boolean {
    return this.reason === "QUOTA_EXCEEDED";
  }

  /** When an exceeded quota resets, if the server said. */
  get resetTime(): Date | undefined {
    const text = this.metadata["reset_time"];
    return text ? new Date(text) : undefined;
  }
}

const RETRYABLE = new Set<Code>([Code.Unavailable]);
const MAX_CHUNK = 1000;

export class SmsClient {
  private readonly client: Client<typeof SmsService>;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(options: SmsClientOptions) {
    const auth: Interceptor = (next) => async (request) => {
      request.header.set("authorization", `Bearer ${options.apiKey}`);
      return next(request);
    };
    this.client = createClient(SmsService, createGrpcTransport({ baseUrl: options.baseUrl, interceptors: [auth] }));
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = { maxAttempts: 5, baseMs: 100, capMs: 5_000, ...options.retry };
  }

  /**
   * Accepts one message; it is durable (and never sent twice) once this resolves. Rejects
   * with a TypeError, before anything is sent, for an unknown traffic class name, an invalid
   * Date or ttlMs, or both expireTime and ttlMs.
   */
  async send(to: string, body: string, options: SendOptions = {}): Promise<Message> {
    const request = sendRequest({ to, body, ...options });
    return this.unary(() => this.client.sendMessage(request, { timeoutMs: options.timeoutMs ?? this.timeoutMs }));
  }

  /** Today's and this month's segments against the quotas, and the rate limit. */
  usage(): Promise<Usage> {
    return this.unary(() => this.client.getUsage({}, { timeoutMs: this.timeoutMs }));
  }

  get(id: string): Promise<Message> {
    return this.unary(() => this.client.getMessage({ id }, { timeoutMs: this.timeoutMs }));
  }

  cancel(id: string): Promise<Message> {
    return this.unary(() => this.client.cancelMessage({ id }, { timeoutMs: this.timeoutMs }));
  }

  /**
   * Every matching message, newest first, fetching pages as it goes. `scheduledOnly` keeps the
   * messages still waiting for their sendTime: the ones cancel() can still stop.
   */
  async *list(
    filter: { statuses?: MessageStatus[]; to?: string; scheduledOnly?: boolean; pageSize?: number } = {},
  ): AsyncGenerator<Message> {
    let pageToken = "";
    do {
      const page = await this.unary(() =>
        this.client.listMessages(
          {
            statuses: filter.statuses ?? [],
            to: filter.to ?? "",
            scheduledOnly: filter.scheduledOnly ?? false,
            pageSize: filter.pageSize ?? 100,
            pageToken,
          },
          { timeoutMs: this.timeoutMs },
        ),
      );
      yield* page.messages;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Streams items over SendMessages; yields one result per item, in order. Items take the
   * options of send() and are checked the same way: an item that fails the check (or an
   * `items` iterator that throws) ends the stream there, and its error is thrown after the
   * results of the items before it; none after it is sent. (Thrown inside the request stream,
   * it would otherwise reach the caller only as a bare gRPC error.)
   */
  async *sendMany(
    items: Iterable<SendItem> | AsyncIterable<SendItem>,
    options: { chunkSize?: number; maxInFlight?: number } = {},
  ): AsyncGenerator<SendMessageResult> {
    const chunkSize = Math.max(1, Math.min(options.chunkSize ?? 500, MAX_CHUNK));
    const room = new Slots(Math.max(1, Math.floor((options.maxInFlight ?? 2000) / chunkSize)));
    let failure: { error: unknown } | undefined;
    async function* requests(): AsyncGenerator<SendMessageRequest> {
      let index = 0;
      try {
        for await (const item of items) {
          let request: SendMessageRequest;
          try {
            request = sendRequest(item);
          } catch (error) {
            const why = error instanceof Error ? error.message : String(error);
            throw new TypeError(`sendMany item ${index}: ${why} (the items before it were sent, none after it)`, {
              cause: error,
            });
          }
          yield request;
          index += 1;
        }
      } catch (error) {
        failure = { error };
      }
    }
    async function* chunks() {
      let batch: SendMessageRequest[] = [];
      for await (const request of requests()) {
        batch.push(request);
        if (batch.length === chunkSize) {
          await room.take();
          yield create(SendMessagesRequestSchema, { items: batch });
          batch = [];
        }
      }
      if (batch.length > 0) {
        await room.take();
        yield create(SendMessagesRequestSchema, { items: batch });
      }
    }
    try {
      for await (const response of this.client.sendMessages(chunks())) {
        room.give();
        yield* response.results;
      }
    } catch (error) {
      throw SmsError.from(error);
    }
    if (failure) throw failure.error;
  }

  /**
   * Status events of the given messages (or the whole tenant), resuming on its own
   * from the last cursor after a dropped connection or a server shutdown. Ends once
   * every watched message is final.
   */
  async *watch(messageIds: string[] = [], options: { afterCursor?: string } = {}): AsyncGenerator<StatusEvent> {
    let cursor = options.afterCursor ?? "";
    let failures = 0;
    for (;;) {
      // Cancels the call when the caller stops iterating (a `break` would otherwise leave the
      // HTTP/2 stream, and the process, running).
      const call = new AbortController();
      try {
        for await (const item of this.client.watchMessageStatus(
          { messageIds, afterCursor: cursor },
          { signal: call.signal },
        )) {
          failures = 0;
          const kind = item.kind;
          if (kind.case === "event") {
            cursor = kind.value.cursor;
            yield kind.value;
          } else if (kind.case === "heartbeat") {
            cursor = kind.value.cursor || cursor;
          } else if (kind.case === "end") {
            cursor = kind.value.cursor || cursor;
            if (kind.value.reason === WatchEndReason.ALL_FINAL) return;
          }
        }
      } catch (error) {
        failures += 1;
        const failure = SmsError.from(error);
        if (!RETRYABLE.has(failure.code) || failures >= this.retry.maxAttempts) throw failure;
      } finally {
        call.abort();
      }
      await sleep(this.backoff(Math.max(failures, 1)));
    }
  }

  private async unary<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const failure = SmsError.from(error);
        if (!RETRYABLE.has(failure.code) || attempt >= this.retry.maxAttempts) throw failure;
      }
      await sleep(this.backoff(attempt));
    }
  }

  private backoff(attempt: number): number {
    return Math.random() * Math.min(this.retry.capMs, this.retry.baseMs * 2 ** (attempt - 1));
  }
}

/**
 * A request with its idempotency key fixed now, so every retry reuses it. Unset options stay
 * unset on the wire, so the server's defaults apply. Mistakes that would otherwise pass as
 * something else (a misspelt class sent as transactional, an Invalid Date) throw here.
 */
function sendRequest(item: SendItem): SendMessageRequest {
  if (item.expireTime !== undefined && item.ttlMs !== undefined) {
    throw new TypeError("set expireTime or ttlMs, not both: each says when the message stops being worth sending");
  }
  if (item.ttlMs !== undefined && !Number.isFinite(item.ttlMs)) {
    throw new TypeError(`ttlMs must be a finite number of milliseconds, not ${item.ttlMs}`);
  }
  return create(SendMessageRequestSchema, {
    to: item.to,
    body: item.body,
    sender: item.sender ?? "",
    clientReference: item.clientReference ?? "",
    metadata: item.metadata ?? {},
    idempotencyKey: item.idempotencyKey ?? randomUUID(),
    trafficClass: item.trafficClass === undefined ? TrafficClass.UNSPECIFIED : trafficClassValue(item.trafficClass),
    sendTime: item.sendTime === undefined ? undefined : timestamp(item.sendTime, "sendTime"),
    expireTime: item.expireTime === undefined ? undefined : timestamp(item.expireTime, "expireTime"),
    ttl: item.ttlMs === undefined ? undefined : durationFromMs(Math.round(item.ttlMs)),
  });
}

const TRAFFIC_CLASS_PREFIX = "TRAFFIC_CLASS_";

/** TrafficClass.OTP for "otp" (any case, with or without the TRAFFIC_CLASS_ prefix); numbers pass through. */
function trafficClassValue(value: TrafficClass | string): TrafficClass {
  if (typeof value === "number") return value;
  const name = value.trim().toUpperCase().replace(/-/g, "_");
  const bare = name.startsWith(TRAFFIC_CLASS_PREFIX) ? name.slice(TRAFFIC_CLASS_PREFIX.length) : name;
  const number = (TrafficClass as unknown as Record<string, number | undefined>)[bare];
  if (typeof number !== "number" || number === TrafficClass.UNSPECIFIED) {
    throw new TypeError(
      `unknown traffic class "${value}"; use one of otp, transactional, marketing (or a TrafficClass)`,
    );
  }
  return number;
}

function timestamp(value: Date, field: string) {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new TypeError(`${field} must be a valid Date`);
  }
  return timestampFromDate(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A counting semaphore: bounds how many chunks are sent ahead of their results. */
class Slots {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async take(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}
