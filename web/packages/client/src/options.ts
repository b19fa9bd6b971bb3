import type { BackoffOptions } from "./backoff.js";
import type { CachedMessage } from "./cache.js";
import type { Codec } from "./codec.js";
import type { Environment } from "./environment.js";
import type { TickmeshError } from "./errors.js";
import type { WelcomeFrame } from "./frames.js";
import type { EventSourceConstructor, FetchLike, WebSocketConstructor } from "./platform.js";
import type { ShareOptions } from "./shared-link.js";
import type { MembershipStatus } from "./presence.js";
import type { StateChange } from "./state.js";
import type { ChannelStatus } from "./subscriptions.js";
import type { TransportFactory, TransportName } from "./transport.js";

/** Messages an event channel starts with when the client has no position for it yet. */
export const HISTORY_ON_FIRST_SUBSCRIBE = 50;

export interface TokenRequest {
  /** `connect`: a new connection; `refresh`: before expiry; `expired`: the edge said 4003. */
  reason: "connect" | "refresh" | "expired";
}

export interface ClientOptions {
  /** The edge's base URL, e.g. `https://stream.example.com` (default: the page's origin). */
  url?: string;
  /** Returns a valid access token (JWT). Called for every connection and before expiry. */
  getToken: (request: TokenRequest) => string | Promise<string>;
  /** Transports in order of preference (default websocket, sse, polling). */
  transports?: TransportName[];
  /** Replace a transport's implementation (tests, custom environments). */
  transportFactories?: Partial<Record<TransportName, TransportFactory>>;
  /** WebSocket codec: JSON (default) or `msgpackCodec` from `@tickmesh/client/msgpack`. */
  codec?: Codec;
  /** Reconnect backoff: full jitter, 0.5 s doubling to at most 20 s by default. */
  backoff?: BackoffOptions;
  /** App-level ping interval, ms (default 15000; never longer than the edge's heartbeat). */
  pingIntervalMs?: number;
  /** No frame for this long after a ping means the server is dead, ms (default 5000). */
  pongTimeoutMs?: number;
  /** Give up on a connection attempt that has not reached `welcome` after this, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Refresh the token this long before it expires, ms (default 60000). */
  refreshLeadMs?: number;
  /** Data older than this is stale: a tab becoming visible then retries at once, ms (default 30000). */
  staleAfterMs?: number;
  /** While on a fallback transport, try the best one again this often, ms (default 30000). */
  upgradeIntervalMs?: number;
  /** A command without a reply after this fails with `timeout` (502), ms (default 15000). */
  commandTimeoutMs?: number;
  /** Recent messages kept per event channel for late subscribers (default 100). */
  historyLimit?: number;
  /**
   * Ticks each price channel starts with and keeps (default 0: only the latest value). With N,
   * every `prices:` subscription asks the edge for the symbol's last N retained ticks (`history`)
   * and `history(ch)` holds the last N ticks, oldest first: what charts and sparklines draw.
   */
  priceHistory?: number;
  /**
   * Longest a `portfolio` value waits for the `trades` fill it includes (its `trade_seq`) when
   * both are subscribed (default 2000 ms; 0: never wait). See PROTOCOL.md, "Causal order".
   */
  causalHoldMs?: number;
  /** `trades` positions received are acknowledged (`ack`, for the edge's audit trail) this often (default 250 ms; 0: never). */
  ackIntervalMs?: number;
  environment?: Environment;
  /**
   * Host constructors, for hosts whose globals lack or misbehave (Node.js: `WebSocket` from the
   * `ws` package; React Native: an `EventSource` polyfill). Default: the globals. A transport
   * whose constructor is missing is skipped (see the `state` event's `reason`).
   */
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
  /**
   * Share one connection among this origin's tabs of the same user (default: on in browser
   * pages). `false` gives this client a connection of its own. See {@link ShareOptions}.
   */
  share?: boolean | ShareOptions;
}

export interface RecoveryEvent {
  ch: string;
  /** `epoch_changed`: restart derived state; `position_expired`: messages before `firstSeq` are gone. */
  reason: string;
  replayed: number;
  firstSeq?: number;
}

export interface ClientEvents {
  state: StateChange & { transport?: TransportName };
  message: CachedMessage;
  subscription: { ch: string; status: ChannelStatus; error?: TickmeshError };
  recovery: RecoveryEvent;
  error: TickmeshError;
  welcome: WelcomeFrame;
  membership: { topic: string; status: MembershipStatus; error?: TickmeshError };
}
