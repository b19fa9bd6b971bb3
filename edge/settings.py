"""The edge's settings, read once from the environment (``tickmesh settings edge`` lists them)."""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.config import ConfigError, setting


@dataclass(frozen=True)
class EdgeSettings:
    nats_url: str = setting("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
    host: str = setting("EDGE_HOST", "127.0.0.1", "Address the edge listens on")
    port: int = setting("EDGE_PORT", 8000, "TCP port the edge listens on (0: any free port, logged at start)")
    # limits
    max_subscriptions: int = setting("EDGE_MAX_SUBSCRIPTIONS", 256, "Subscriptions per connection")
    max_frame_bytes: int = setting(
        "EDGE_MAX_FRAME_BYTES", 65536, "Largest client frame handled (bytes); larger ones get error 103"
    )
    hard_frame_bytes: int = setting(
        "EDGE_HARD_FRAME_BYTES", 1048576, "Largest WebSocket message accepted at all (bytes); larger closes with 1009"
    )
    outbox_max_frames: int = setting(
        "EDGE_OUTBOX_MAX_FRAMES", 2048, "Event frames queued per connection before it counts as a slow consumer"
    )
    outbox_max_bytes: int = setting(
        "EDGE_OUTBOX_MAX_BYTES", 4194304, "Bytes queued per connection before it counts as a slow consumer"
    )
    max_conns_per_user: int = setting("EDGE_MAX_CONNS_PER_USER", 20, "Open connections per user on one edge")
    max_conns_per_ip: int = setting("EDGE_MAX_CONNS_PER_IP", 500, "Open connections per source address on one edge")
    cmd_rate: float = setting("EDGE_CMD_RATE", 10.0, "Commands per second per user (token bucket rate)")
    cmd_burst: float = setting("EDGE_CMD_BURST", 20.0, "Commands a user may send at once (token bucket size)")
    http_rate: float = setting(
        "EDGE_HTTP_RATE",
        5.0,
        "Requests per second per user to /ticket and /dev/token (token bucket rate; "
        "POST /cmd counts against EDGE_CMD_RATE like a WebSocket command)",
    )
    http_burst: float = setting("EDGE_HTTP_BURST", 20.0, "Such requests a user may send at once (token bucket size)")
    http_ip_rate: float = setting(
        "EDGE_HTTP_IP_RATE", 50.0, "Requests per second per source address to /ticket, /cmd and /dev/token"
    )
    http_ip_burst: float = setting(
        "EDGE_HTTP_IP_BURST", 200.0, "Such requests one address may send at once (token bucket size)"
    )
    # authentication
    auth_timeout: float = setting("EDGE_AUTH_TIMEOUT_S", 5.0, "Seconds a connection has to authenticate")
    jwt_algorithms: tuple[str, ...] = setting(
        "EDGE_JWT_ALGORITHMS", ("HS256",), "Accepted JWT algorithms (HS256 for development; RS256, ES256 with keys)"
    )
    jwt_secret: str = setting("TICKMESH_JWT_SECRET", "", "HS256 secret (tickmesh up creates a local one)")
    jwt_public_key_file: str = setting("EDGE_JWT_PUBLIC_KEY_FILE", "", "PEM public key for RS256/ES256 tokens")
    jwks_url: str = setting(
        "EDGE_JWKS_URL", "", "JWKS URL for RS256/ES256 tokens (keys cached, refetched on unknown kid)"
    )
    jwks_refetch_cooldown: float = setting(
        "EDGE_JWKS_REFETCH_COOLDOWN_S", 30.0, "Least seconds between JWKS refetches caused by unknown kids"
    )
    jwt_issuer: str = setting("EDGE_JWT_ISSUER", "tickmesh-dev", "Required iss claim")
    jwt_audience: str = setting("EDGE_JWT_AUDIENCE", "tickmesh", "Required aud claim")
    jwt_leeway: float = setting("EDGE_JWT_LEEWAY_S", 30.0, "Clock leeway for exp and nbf (seconds)")
    allowed_origins: tuple[str, ...] = setting(
        "EDGE_ALLOWED_ORIGINS",
        ("http://127.0.0.1:8000", "http://localhost:8000"),
        "Browser origins allowed to open connections, besides the edge's own origin; * allows any",
    )
    # liveness and drain
    heartbeat: float = setting(
        "EDGE_HEARTBEAT_S", 25.0, "Seconds between server heartbeats; two missed close the connection"
    )
    drain_deadline: float = setting(
        "EDGE_DRAIN_DEADLINE_S", 10.0, "Seconds from SIGTERM until remaining connections are closed"
    )
    drain_spread_ms: int = setting(
        "EDGE_DRAIN_SPREAD_MS", 5000, "Clients are asked to reconnect within 0..N ms (jitter)"
    )
    # wire
    flush_ms: float = setting(
        "EDGE_FLUSH_MS",
        10.0,
        "Frames due within this many milliseconds leave together in one WebSocket message "
        "(0: write as soon as a frame is queued)",
    )
    conflate_after: int = setting(
        "EDGE_CONFLATE_AFTER",
        64,
        "Pending frames beyond which a connection counts as lagging and its state "
        "channels conflate to the latest value",
    )
    permessage_deflate: bool = setting(
        "EDGE_PERMESSAGE_DEFLATE",
        False,
        "Negotiate permessage-deflate (the direct engine compresses each batch once, "
        "without context; inflating client messages costs memory per connection)",
    )
    ws_engine: str = setting(
        "EDGE_WS_ENGINE",
        "direct",
        "WebSocket engine for /ws: direct (the edge's own protocol, batches written straight "
        "to the socket) or quart (Quart on Hypercorn, a writer task per connection)",
    )
    ws_high_water: int = setting(
        "EDGE_WS_HIGH_WATER",
        262144,
        "Bytes buffered for a WebSocket above which the direct engine stops writing to it "
        "until it drains (its outbox conflates or overflows meanwhile)",
    )
    replay_cache_mb: int = setting(
        "EDGE_REPLAY_CACHE_MB",
        64,
        "Recent events kept in memory per edge (MiB) to answer resubscriptions without asking JetStream",
    )
    replay_concurrency: int = setting(
        "EDGE_REPLAY_CONCURRENCY", 16, "Replays read from JetStream at once per edge (a consumer each); more wait"
    )
    head_timeout: float = setting(
        "EDGE_HEAD_TIMEOUT_S",
        10.0,
        "Seconds a new connection has to send its whole request head (slow clients are cut off)",
    )
    keep_alive: float = setting(
        "EDGE_KEEP_ALIVE_S",
        5.0,
        "Seconds an HTTP connection may sit idle between requests (Hypercorn's "
        "keep_alive_timeout); it also bounds the first request head on the quart engine",
    )
    max_body_bytes: int = setting(
        "EDGE_MAX_BODY_BYTES", 65536, "Largest HTTP request body accepted (bytes); larger ones get 413 with error 103"
    )
    body_timeout: float = setting(
        "EDGE_BODY_TIMEOUT_S", 10.0, "Seconds a client has to send a whole request body (slow bodies get 408)"
    )
    backlog: int = setting(
        "EDGE_LISTEN_BACKLOG",
        4096,
        "Connections the kernel queues before the edge accepts them (capped by "
        "net.core.somaxconn); a reconnect storm needs thousands",
    )
    workers: int = setting(
        "EDGE_WORKERS", 1, "Edge processes sharing the port with SO_REUSEPORT (each with its own NATS connection)"
    )
    # TLS (off unless a certificate is set: `tickmesh up` stays plain HTTP on loopback)
    tls_cert_file: str = setting(
        "EDGE_TLS_CERT_FILE", "", "PEM certificate chain: the edge serves HTTPS and WSS itself (TLS 1.2+ only)"
    )
    tls_key_file: str = setting("EDGE_TLS_KEY_FILE", "", "PEM private key of EDGE_TLS_CERT_FILE (unencrypted)")
    tls_client_ca_file: str = setting(
        "EDGE_TLS_CLIENT_CA_FILE",
        "",
        "PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS)",
    )
    hsts_max_age: int = setting(
        "EDGE_HSTS_MAX_AGE_S", 31536000, "Strict-Transport-Security max-age sent on HTTPS responses (0: no header)"
    )
    # presence (PROTOCOL.md, "Presence")
    presence_heartbeat: float = setting(
        "EDGE_PRESENCE_HEARTBEAT_S",
        5.0,
        "Seconds between renewals of the edge's presence lease (at least 1; the "
        "lease lives two of them: a dead edge's members leave within that)",
    )
    presence_grace: float = setting(
        "EDGE_PRESENCE_GRACE_S",
        5.0,
        "Seconds a closed connection's memberships are kept, so a reconnect shows no leave/join",
    )
    presence_max_topics: int = setting("EDGE_PRESENCE_MAX_TOPICS", 16, "Presence topics one connection may join")
    presence_list_limit: int = setting(
        "EDGE_PRESENCE_LIST_LIMIT", 100, "Members listed per presence topic (larger topics send counts plus these)"
    )
    presence_flush_ms: float = setting(
        "EDGE_PRESENCE_FLUSH_MS",
        250.0,
        "Least milliseconds between two presence deltas of one topic (changes coalesce)",
    )
    presence_rate: float = setting("EDGE_PRESENCE_RATE", 5.0, "Presence joins and data updates per second per user")
    presence_burst: float = setting("EDGE_PRESENCE_BURST", 10.0, "Such joins and updates a user may send at once")
    # delivery and fallbacks
    poll_wait: float = setting("EDGE_POLL_WAIT_S", 25.0, "Seconds a long poll waits for messages")
    ticket_ttl: float = setting("EDGE_TICKET_TTL_S", 60.0, "Seconds a fresh SSE/polling ticket is valid")
    ticket_secret: str = setting(
        "EDGE_TICKET_SECRET", "", "Key all edges share to sign tickets (default: derived from TICKMESH_JWT_SECRET)"
    )
    # audit trail and causal order of a user's own channels
    audit_trades: bool = setting(
        "EDGE_AUDIT_TRADES",
        True,
        "Record when each trades event reaches each of its user's connections, and the "
        "client's acks, on TM_TRADE_AUDIT (retention TM_RETAIN_TRADE_AUDIT_S)",
    )
    audit_flush_ms: float = setting(
        "EDGE_AUDIT_FLUSH_MS", 1000.0, "Audit records are written to NATS in a batch this often (milliseconds)"
    )
    audit_max_records: int = setting(
        "EDGE_AUDIT_MAX_RECORDS",
        100000,
        "Audit records held while NATS is slow or away; beyond it the oldest are "
        "dropped (counted in tickmesh_edge_audit_records_total)",
    )
    causal_hold_ms: float = setting(
        "EDGE_CAUSAL_HOLD_MS",
        2000.0,
        "Longest a portfolio value waits for the fill it includes to be delivered on "
        "the same connection (0: never wait)",
    )
    # local development
    dev_mode: bool = setting("EDGE_DEV_MODE", False, "Serve /dev/token and /dev/users (never in production)")
    static_dir: str = setting(
        "EDGE_STATIC_DIR", "", "Folder with the dashboard build served at / (default: web/apps/dashboard/dist)"
    )

    def validate(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError("EDGE_PORT", str(self.port), "must be 0-65535 (0 picks a free port and logs it)")
        for env, value in (
            ("EDGE_MAX_SUBSCRIPTIONS", self.max_subscriptions),
            ("EDGE_MAX_FRAME_BYTES", self.max_frame_bytes),
            ("EDGE_OUTBOX_MAX_FRAMES", self.outbox_max_frames),
            ("EDGE_OUTBOX_MAX_BYTES", self.outbox_max_bytes),
            ("EDGE_MAX_CONNS_PER_USER", self.max_conns_per_user),
            ("EDGE_MAX_CONNS_PER_IP", self.max_conns_per_ip),
            ("EDGE_AUTH_TIMEOUT_S", self.auth_timeout),
            ("EDGE_HEARTBEAT_S", self.heartbeat),
            ("EDGE_CMD_RATE", self.cmd_rate),
            ("EDGE_CMD_BURST", self.cmd_burst),
            ("EDGE_HTTP_RATE", self.http_rate),
            ("EDGE_HTTP_BURST", self.http_burst),
            ("EDGE_HTTP_IP_RATE", self.http_ip_rate),
            ("EDGE_HTTP_IP_BURST", self.http_ip_burst),
            ("EDGE_WS_HIGH_WATER", self.ws_high_water),
            ("EDGE_WORKERS", self.workers),
            ("EDGE_LISTEN_BACKLOG", self.backlog),
            ("EDGE_HEAD_TIMEOUT_S", self.head_timeout),
            ("EDGE_KEEP_ALIVE_S", self.keep_alive),
            ("EDGE_MAX_BODY_BYTES", self.max_body_bytes),
            ("EDGE_BODY_TIMEOUT_S", self.body_timeout),
            ("EDGE_REPLAY_CACHE_MB", self.replay_cache_mb),
            ("EDGE_REPLAY_CONCURRENCY", self.replay_concurrency),
            ("EDGE_AUDIT_FLUSH_MS", self.audit_flush_ms),
            ("EDGE_AUDIT_MAX_RECORDS", self.audit_max_records),
            ("EDGE_PRESENCE_MAX_TOPICS", self.presence_max_topics),
            ("EDGE_PRESENCE_LIST_LIMIT", self.presence_list_limit),
            ("EDGE_PRESENCE_RATE", self.presence_rate),
            ("EDGE_PRESENCE_BURST", self.presence_burst),
        ):
            if value <= 0:
                raise ConfigError(env, str(value), "must be positive")
        if self.causal_hold_ms < 0:
            raise ConfigError("EDGE_CAUSAL_HOLD_MS", str(self.causal_hold_ms), "must be 0 or more")
        if self.ws_engine not in ("direct", "quart"):
            raise ConfigError("EDGE_WS_ENGINE", self.ws_engine, "must be direct or quart")
        if self.presence_heartbeat < 1:
            raise ConfigError(
                "EDGE_PRESENCE_HEARTBEAT_S",
                str(self.presence_heartbeat),
                "must be at least 1 (NATS key TTLs are whole seconds)",
            )
        if self.presence_grace < 0 or self.presence_flush_ms < 0:
            raise ConfigError("EDGE_PRESENCE_GRACE_S", str(self.presence_grace), "grace and flush must not be negative")
        if self.hard_frame_bytes < self.max_frame_bytes:
            raise ConfigError(
                "EDGE_HARD_FRAME_BYTES", str(self.hard_frame_bytes), "must be at least EDGE_MAX_FRAME_BYTES"
            )
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            missing = "EDGE_TLS_KEY_FILE" if self.tls_cert_file else "EDGE_TLS_CERT_FILE"
            raise ConfigError(missing, "", "TLS needs both EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE")
        if self.tls_client_ca_file and not self.tls:
            raise ConfigError(
                "EDGE_TLS_CLIENT_CA_FILE",
                self.tls_client_ca_file,
                "client certificates need TLS: set EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE",
            )
        if self.hsts_max_age < 0:
            raise ConfigError("EDGE_HSTS_MAX_AGE_S", str(self.hsts_max_age), "must be 0 or more")
        if any(a.startswith("HS") for a in self.jwt_algorithms) and not self.jwt_secret:
            raise ConfigError("TICKMESH_JWT_SECRET", "", "HS256 tokens need a secret (tickmesh up creates one)")

    @property
    def tls(self) -> bool:
        """Whether the edge serves HTTPS and WSS itself."""
        return bool(self.tls_cert_file and self.tls_key_file)
