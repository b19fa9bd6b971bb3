import { CLOSE_INFO, ERROR_INFO, ErrorCode } from "./generated/contracts.js";

/**
 * The one error type of the client. `code` is a stable number from contracts/codes.toml
 * (an `err` code, or a close code when the connection itself failed); `codeName` is its name;
 * `retry` says whether trying again may succeed. `reason` is for people and may change.
 */
export class TickmeshError extends Error {
  override readonly name = "TickmeshError";
  readonly codeName: string;
  readonly retry: boolean;

  constructor(
    readonly code: number,
    readonly reason: string,
    readonly command?: string,
    /** What the server sent with the error for the client to act on (610: the current watch-list). */
    readonly data?: unknown,
  ) {
    super(`${errorName(code)} (${code}): ${reason}`);
    const info = ERROR_INFO[code] ?? CLOSE_INFO[code];
    this.codeName = info?.[0] ?? "unknown";
    this.retry = info?.[1] ?? code >= 500;
  }
}

export function errorName(code: number): string {
  return (ERROR_INFO[code] ?? CLOSE_INFO[code])?.[0] ?? `code_${code}`;
}

/**
 * Whether to reconnect after a close code. Codes listed in codes.toml say so themselves;
 * 4100-4199 mean "do not"; anything else (1006 from a dead network, proxies' codes) is
 * transient, so yes. Mirrors tickmesh.contracts.codes.should_reconnect.
 */
export function shouldReconnect(closeCode: number): boolean {
  const info = CLOSE_INFO[closeCode];
  if (info) return info[1];
  return !(closeCode >= 4100 && closeCode <= 4199);
}

/** The error for a command that never got an answer because the connection went away. */
export const connectionLost = (command?: string): TickmeshError =>
  new TickmeshError(ErrorCode.UNAVAILABLE, "connection lost before the reply", command);
