/**
 * Demo login (development stacks only): the edge's `POST /dev/token` signs a token for a seeded
 * user. A real deployment gets tokens from its identity provider instead; only this file changes.
 */
export interface DemoUser {
  id: string;
  name: string;
  roles?: string[];
}

const KEY = "tickmesh.demo.user";

export async function demoUsers(): Promise<DemoUser[]> {
  const resp = await fetch("/dev/users");
  if (!resp.ok) throw new Error(`demo login unavailable (HTTP ${resp.status}): is the stack running in dev mode?`);
  return ((await resp.json()) as { users: DemoUser[] }).users;
}

/** A token source for the client: fetches a token, reuses it until a minute before expiry. */
export function tokenSource(user: string): (request: { reason: string }) => Promise<string> {
  let token = "";
  let expiresAt = 0;
  return async ({ reason }) => {
    if (token && reason === "connect" && Date.now() < expiresAt - 60_000) return token;
    const resp = await fetch("/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    if (!resp.ok) throw new Error(`token refused: HTTP ${resp.status}`);
    const body = (await resp.json()) as { token: string; expires_in: number };
    token = body.token;
    expiresAt = Date.now() + body.expires_in * 1000;
    return token;
  };
}

export const savedUser = (): string | null => sessionStorage.getItem(KEY);
export const saveUser = (user: string | null): void => (user ? sessionStorage.setItem(KEY, user) : sessionStorage.removeItem(KEY));
