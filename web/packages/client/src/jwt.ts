/** The claims of a JWT, read without verifying: for scheduling and keying only, never for trust. */
function claims(token: string): Record<string, unknown> | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const parsed = JSON.parse(json) as unknown;
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT (Unix seconds): only for scheduling refresh. */
export function tokenExpiry(token: string): number | undefined {
  const exp = claims(token)?.exp;
  return typeof exp === "number" ? exp : undefined;
}

/**
 * The `sub` claim of a JWT: which user's tabs may share a connection. The edge verifies the
 * token; the shared connection also checks that the edge's `welcome` names this same user.
 */
export function tokenSubject(token: string): string | undefined {
  const sub = claims(token)?.sub;
  return typeof sub === "string" && sub ? sub : undefined;
}
