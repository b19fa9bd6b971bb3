import { isLive, type CachedMessage, type Flags, type TickmeshClient } from "@tickmesh/client";
import {
  ErrorCode, OpenFeatureEventEmitter, ProviderEvents, StandardResolutionReasons,
  type EvaluationContext, type JsonValue, type Provider, type ResolutionDetails,
} from "@openfeature/web-sdk";

const REASONS: Record<string, string> = {
  default: StandardResolutionReasons.DEFAULT,
  targeting_match: StandardResolutionReasons.TARGETING_MATCH,
  split: StandardResolutionReasons.SPLIT,
  disabled: StandardResolutionReasons.DISABLED,
};

type Kind = "boolean" | "string" | "number" | "object";

function kindOf(value: unknown): Kind | undefined {
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string") return "string";
  if (typeof value === "number") return "number";
  if (value !== null && typeof value === "object") return "object";
  return undefined;
}

/**
 * OpenFeature web provider over tickmesh: `useFlag` / `client.getBooleanValue` read the values
 * the edge evaluated for the signed-in user, live on the `flags` channel.
 *
 * - Values come evaluated: rules and percentages never reach the browser, and the evaluation
 *   context cannot choose another user (the edge evaluates the verified token's user). The
 *   context is accepted and ignored.
 * - `initialize` resolves with the first `flags` message (the provider is READY then); every later
 *   message that changes a value emits `PROVIDER_CONFIGURATION_CHANGED` naming the flags.
 * - While the connection is not live the provider is STALE (values are the last known ones);
 *   back live, READY again.
 * - A missing flag is `FLAG_NOT_FOUND`, one of another type `TYPE_MISMATCH`: both resolve to
 *   the caller's default.
 */
export class TickmeshFlagProvider implements Provider {
  readonly metadata = { name: "tickmesh" } as const;
  readonly runsOn = "client" as const;
  readonly events = new OpenFeatureEventEmitter();
  private flags: Flags["flags"] = {};
  private revision = 0;
  private off: (() => void) | undefined;
  private offState: (() => void) | undefined;
  private stale = false;

  constructor(private readonly client: TickmeshClient) {}

  initialize(_context?: EvaluationContext): Promise<void> {
    return new Promise((resolve) => {
      let ready = false;
      const take = (m: CachedMessage<Flags>) => {
        const changed = this.apply(m.data);
        if (!ready) {
          ready = true;
          resolve();
        } else if (changed.length) {
          this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: changed });
        }
      };
      this.off = this.client.subscribe("flags", take);
      this.offState = this.client.events.on("state", ({ to }) => {
        if (!ready) return;
        if (!isLive(to) && !this.stale) {
          this.stale = true;
          this.events.emit(ProviderEvents.Stale, { message: `connection ${to}` });
        } else if (isLive(to) && this.stale) {
          this.stale = false;
          this.events.emit(ProviderEvents.Ready);
        }
      });
    });
  }

  async onClose(): Promise<void> {
    this.off?.();
    this.offState?.();
    this.off = this.offState = undefined;
  }

  /** Store a snapshot; the names whose value (or variant) changed. */
  private apply(data: Flags): string[] {
    const next = data.flags ?? {};
    const names = new Set([...Object.keys(this.flags), ...Object.keys(next)]);
    const changed = [...names].filter((n) => JSON.stringify(this.flags[n]) !== JSON.stringify(next[n]));
    this.flags = next;
    this.revision = data.revision;
    return changed.sort();
  }

  private resolve<T>(key: string, fallback: T, kind: Kind): ResolutionDetails<T> {
    const flag = this.flags[key];
    if (!flag) {
      return { value: fallback, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.FLAG_NOT_FOUND, errorMessage: `no flag named ${key}` };
    }
    if (kindOf(flag.value) !== kind) {
      return { value: fallback, reason: StandardResolutionReasons.ERROR, errorCode: ErrorCode.TYPE_MISMATCH, errorMessage: `${key} is not a ${kind} flag` };
    }
    return {
      value: flag.value as T,
      variant: flag.variant,
      reason: this.stale ? StandardResolutionReasons.STALE : (REASONS[flag.reason] ?? StandardResolutionReasons.UNKNOWN),
      flagMetadata: { revision: this.revision },
    };
  }

  resolveBooleanEvaluation(key: string, fallback: boolean): ResolutionDetails<boolean> {
    return this.resolve(key, fallback, "boolean");
  }

  resolveStringEvaluation(key: string, fallback: string): ResolutionDetails<string> {
    return this.resolve(key, fallback, "string");
  }

  resolveNumberEvaluation(key: string, fallback: number): ResolutionDetails<number> {
    return this.resolve(key, fallback, "number");
  }

  resolveObjectEvaluation<T extends JsonValue>(key: string, fallback: T): ResolutionDetails<T> {
    return this.resolve(key, fallback, "object");
  }
}
