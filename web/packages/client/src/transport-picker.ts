import type { Environment } from "./environment.js";
import type { TransportName } from "./transport.js";

const STORAGE_KEY = "tickmesh.transport";

/**
 * Which transport to try next. Starts with the one that last worked (remembered across page
 * loads), falls back down the list when one will not even open (blocked by a proxy or a
 * firewall), and returns to the top when asked to upgrade.
 *
 * A transport that worked before gets a few failed opens before we give up on it, because a
 * failed open then more likely means the edge is down (every transport would fail) than that
 * the transport became blocked.
 */
export class TransportPicker {
  private index: number;
  private startIndex: number;
  private readonly worked = new Set<TransportName>();
  private failures = 0;

  constructor(
    private readonly names: readonly TransportName[],
    private readonly env: Environment,
    private readonly retriesIfWorked = 3,
  ) {
    const remembered = env.load(STORAGE_KEY) as TransportName | null;
    const i = remembered ? names.indexOf(remembered) : -1;
    this.index = this.startIndex = i >= 0 ? i : 0;
    if (i >= 0) this.worked.add(names[i]!);
  }

  /** Whether there is any transport to try at all. */
  any(): boolean {
    return this.names.length > 0;
  }

  current(): TransportName {
    return this.names[this.index]!;
  }

  /** Whether we are on the most preferred transport (nothing to upgrade to). */
  atBest(): boolean {
    return this.index === 0;
  }

  best(): TransportName {
    return this.names[0]!;
  }

  /** The current transport reached `welcome`. */
  succeeded(): void {
    const name = this.current();
    this.worked.add(name);
    this.failures = 0;
    this.startIndex = this.index;
    this.env.save(STORAGE_KEY, name);
  }

  /** The connection had opened and then broke: keep the transport, it is not blocked. */
  dropped(): void {
    this.failures = 0;
  }

  /**
   * The current transport failed to open. Returns `"next"` when the caller should try the next
   * transport at once, `"wait"` when it should back off first (the whole list failed, or a
   * transport that worked before gets another try).
   */
  failedToOpen(): "next" | "wait" {
    this.failures += 1;
    const limit = this.worked.has(this.current()) ? this.retriesIfWorked : 1;
    if (this.failures < limit) return "wait";
    this.failures = 0;
    this.index = (this.index + 1) % this.names.length;
    if (this.index === this.startIndex) return "wait"; // went all the way round: the edge is down
    return "next";
  }

  /** Go back to the best transport (an upgrade probe found it reachable). */
  upgrade(): void {
    this.index = 0;
    this.failures = 0;
  }
}
