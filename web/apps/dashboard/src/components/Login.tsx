import { useEffect, useState } from "react";
import { demoUsers, type DemoUser } from "../auth";

/** Demo login: pick one of the seeded users (development stacks only). */
export function Login(props: { onLogin(user: string): void }) {
  const [users, setUsers] = useState<DemoUser[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    demoUsers().then(setUsers, (e: Error) => setError(e.message));
  }, []);
  return (
    <div className="login">
      <div className="login-card">
        <div className="brand big">
          <svg viewBox="0 0 16 16" width="22" height="22" aria-hidden="true">
            <path d="M1 12 L5 7 L8 9 L15 2" stroke="#22c55e" strokeWidth="2" fill="none" />
          </svg>
          tickmesh
        </div>
        <p className="muted">Demo environment. Sign in as a seeded user.</p>
        {error && <div className="form-error">{error}</div>}
        {!users && !error && <div className="muted">Loading users…</div>}
        <ul className="user-list">
          {users?.map((u) => (
            <li key={u.id}>
              <button onClick={() => props.onLogin(u.id)} data-testid={`login-${u.id}`}>
                <span className="avatar">{u.name.slice(0, 1)}</span>
                <span className="who">
                  <span className="name">{u.name}</span>
                  <span className="muted small">{u.id}{u.roles?.length ? ` · ${u.roles.join(", ")}` : ""}</span>
                </span>
              </button>
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
