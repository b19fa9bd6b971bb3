import { connectionLost, TickmeshError } from "./errors.js";
import { ErrorCode } from "./generated/contracts.js";
import type { ClientFrame, ErrFrame, OkFrame, RequestId } from "./frames.js";

interface Pending {
  name: string;
  key: string;
  data: unknown;
  resolve(data: unknown): void;
  reject(err: TickmeshError): void;
  timer: ReturnType<typeof setTimeout>;
  /** Request id of the attempt in flight, if sent. */
  id?: RequestId;
}

/**
 * Commands waiting for their reply. Every command carries an idempotency `key` (the caller's,
 * or a random one), so one cut off by a lost connection is safely sent again after reconnecting:
 * the edge executes it once and answers with the first reply.
 */
export class CommandQueue {
  private readonly waiting = new Set<Pending>();
  private readonly byId = new Map<RequestId, Pending>();

  constructor(private readonly nextId: () => RequestId) {}

  add(name: string, data: unknown, key: string, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const entry: Pending = {
        name, key, data, resolve, reject,
        timer: setTimeout(() => {
          this.drop(entry);
          reject(new TickmeshError(ErrorCode.TIMEOUT, `no reply within ${timeoutMs} ms`, name));
        }, timeoutMs),
      };
      this.waiting.add(entry);
    });
  }

  /** Frames for every command not in flight; marks them in flight. */
  flush(): ClientFrame[] {
    const out: ClientFrame[] = [];
    for (const entry of this.waiting) {
      if (entry.id !== undefined) continue;
      entry.id = this.nextId();
      this.byId.set(entry.id, entry);
      out.push({ op: "cmd", id: entry.id, name: entry.name, key: entry.key, data: entry.data });
    }
    return out;
  }

  /** Handle a reply; returns false when the id is not a command's. */
  reply(frame: OkFrame | ErrFrame): boolean {
    const entry = frame.id == null ? undefined : this.byId.get(frame.id);
    if (!entry) return false;
    this.drop(entry);
    if (frame.op === "ok") entry.resolve(frame.data ?? {});
    else entry.reject(new TickmeshError(frame.code, frame.reason, entry.name, frame.data));
    return true;
  }

  /** The connection went away: commands in flight are sent again (same key) on the next one. */
  interrupted(): void {
    for (const entry of this.waiting) entry.id = undefined;
    this.byId.clear();
  }

  /** The client stopped for good: nothing will answer. */
  failAll(): void {
    for (const entry of [...this.waiting]) {
      this.drop(entry);
      entry.reject(connectionLost(entry.name));
    }
  }

  private drop(entry: Pending): void {
    clearTimeout(entry.timer);
    this.waiting.delete(entry);
    if (entry.id !== undefined) this.byId.delete(entry.id);
  }
}

/** A random idempotency key (at most 64 characters, as the protocol requires). */
export function randomKey(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c?.randomUUID) return c.randomUUID();
  return `k${Date.now().toString(36)}${Math.random().toString(36).slice(2, 12)}`;
}
