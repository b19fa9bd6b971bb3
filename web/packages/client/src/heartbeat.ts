/**
 * App-level liveness: browsers cannot see WebSocket ping frames, and a dead server (or a
 * half-open TCP connection behind a NAT) can look connected for minutes. Every `intervalMs`
 * we send `ping`; if nothing at all arrives for `timeoutMs` after it, the connection is dead.
 * Any inbound frame counts as proof of life (`touch`).
 */
export interface HeartbeatOptions {
  intervalMs: number;
  timeoutMs: number;
  sendPing: () => void;
  onDead: () => void;
}

export class Heartbeat {
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private deadTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly options: HeartbeatOptions) {
    this.schedulePing();
  }

  /** Something arrived: the server is alive; the next ping is a full interval away. */
  touch(): void {
    if (this.stopped) return;
    clearTimeout(this.deadTimer);
    this.deadTimer = undefined;
    this.schedulePing();
  }

  /** Check now (e.g. the tab became visible after a long sleep). */
  probe(): void {
    if (this.stopped || this.deadTimer !== undefined) return;
    this.ping();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pingTimer);
    clearTimeout(this.deadTimer);
  }

  private schedulePing(): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => this.ping(), this.options.intervalMs);
  }

  private ping(): void {
    if (this.stopped) return;
    this.options.sendPing();
    clearTimeout(this.deadTimer);
    this.deadTimer = setTimeout(() => {
      if (!this.stopped) this.options.onDead();
    }, this.options.timeoutMs);
  }
}
