/**
 * Client for the Ghasi SMS Gateway, for Node services (NestJS platforms).
 *
 * The generated stubs (protobuf-es + Connect, gRPC protocol) are re-exported;
 * SmsClient adds what every caller would otherwise write again: API-key auth,
 * idempotency keys fixed before the first attempt (so retries never send
 * twice), retries on UNAVAILABLE with backoff and full jitter, deadlines, a
 * bulk helper with bounded in-flight items, and a watch that resumes from its
 * last cursor.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
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
  type Usage,
  WatchEndReason,
} from "./gen/ghasi/sms/v1/sms_pb.js";

export * from "./gen/ghasi/sms/v1/sms_pb.js";
export { Code } from "@connectrpc/connect";

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
  timeoutMs?: number;
}

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

  send(to: string, body: string, options: SendOptions = {}): Promise<Message> {
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

  /** Every matching message, newest first, fetching pages as it goes. */
  async *list(filter: { statuses?: MessageStatus[]; to?: string; pageSize?: number } = {}): AsyncGenerator<Message> {
    let pageToken = "";
    do {
      const page = await this.unary(() =>
        this.client.listMessages(
          { statuses: filter.statuses ?? [], to: filter.to ?? "", pageSize: filter.pageSize ?? 100, pageToken },
          { timeoutMs: this.timeoutMs },
        ),
      );
      yield* page.messages;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Streams items over SendMessages; yields one result per item, in order. */
  async *sendMany(
    items: Iterable<SendItem> | AsyncIterable<SendItem>,
    options: { chunkSize?: number; maxInFlight?: number } = {},
  ): AsyncGenerator<SendMessageResult> {
    const chunkSize = Math.max(1, Math.min(options.chunkSize ?? 500, MAX_CHUNK));
    const room = new Slots(Math.max(1, Math.floor((options.maxInFlight ?? 2000) / chunkSize)));
    async function* chunks() {
      let batch: SendMessageRequest[] = [];
      for await (const item of items) {
        batch.push(sendRequest(item));
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

function sendRequest(item: SendItem): SendMessageRequest {
  return create(SendMessageRequestSchema, {
    to: item.to,
    body: item.body,
    sender: item.sender ?? "",
    clientReference: item.clientReference ?? "",
    metadata: item.metadata ?? {},
    idempotencyKey: item.idempotencyKey ?? randomUUID(),
  });
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
