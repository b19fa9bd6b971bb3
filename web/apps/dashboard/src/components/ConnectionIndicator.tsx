import { useConnectionStatus } from "@tickmesh/react";
import { useEffect, useState } from "react";

const TRANSPORT_LABEL = { websocket: "WebSocket", sse: "SSE", polling: "Long polling" } as const;

/** A blip shorter than this (a redeploy, a transport upgrade) is not worth alarming anyone. */
const GRACE_MS = 1200;

/**
 * State and transport of the connection. "Reconnecting…" appears only once the outage has
 * lasted the grace period; until then the last live state stays on screen.
 */
export function ConnectionIndicator() {
  const status = useConnectionStatus();
  const [graceOver, setGraceOver] = useState(false);
  const troubled = status.state === "reconnecting" || status.state === "connecting";
  useEffect(() => {
    setGraceOver(false);
    if (!troubled) return;
    const t = setTimeout(() => setGraceOver(true), GRACE_MS);
    return () => clearTimeout(t);
  }, [troubled, status.since]);

  const [lastTransport, setLastTransport] = useState(status.transport);
  useEffect(() => {
    if (status.transport) setLastTransport(status.transport);
  }, [status.transport]);

  let shown: string = status.state;
  if (troubled && !graceOver && status.state === "reconnecting") shown = "connected";
  const transport = status.transport ?? lastTransport;
  const label =
    shown === "connected" ? "Live" :
    shown === "degraded" ? "Degraded" :
    shown === "reconnecting" ? "Reconnecting…" :
    shown === "connecting" ? "Connecting…" :
    shown === "offline" ? "Offline" : "Disconnected";
  const title = status.error ? `${status.error.codeName}: ${status.error.reason}` : `state: ${status.state}`;
  return (
    <div className={`conn conn-${shown}`} data-testid="connection" data-state={shown} data-transport={status.transport ?? ""} title={title}>
      <span className="conn-dot" />
      <span className="conn-label">{label}</span>
      {transport && shown !== "disconnected" && <span className="conn-transport">{TRANSPORT_LABEL[transport]}</span>}
    </div>
  );
}
