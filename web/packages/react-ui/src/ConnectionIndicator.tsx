import { useConnectionStatus } from "@tickmesh/react";
import { useEffect, useState } from "react";

const TRANSPORT_LABEL = { websocket: "WebSocket", sse: "SSE", polling: "Long polling" } as const;

export interface ConnectionIndicatorProps {
  /** A blip shorter than this (a redeploy, a transport upgrade) shows no alarm, ms (default 1200). */
  graceMs?: number;
}

/**
 * State and transport of the provider's connection: Live, Degraded, Reconnecting…, Connecting…,
 * Offline, Disconnected (with the close code's name and reason as a tooltip). The state is said
 * in words and announced politely to screen readers, never by colour alone.
 */
export function ConnectionIndicator({ graceMs = 1200 }: ConnectionIndicatorProps) {
  const status = useConnectionStatus();
  const [graceOver, setGraceOver] = useState(false);
  const troubled = status.state === "reconnecting" || status.state === "connecting";
  useEffect(() => {
    setGraceOver(false);
    if (!troubled) return;
    const t = setTimeout(() => setGraceOver(true), graceMs);
    return () => clearTimeout(t);
  }, [troubled, status.since, graceMs]);

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
    <div className={`conn conn-${shown}`} data-testid="connection" data-state={shown} data-transport={status.transport ?? ""} title={title} role="status" aria-live="polite">
      <span className="conn-dot" aria-hidden="true" />
      <span className="conn-label">{label}</span>
      {transport && shown !== "disconnected" && <span className="conn-transport">{TRANSPORT_LABEL[transport]}</span>}
    </div>
  );
}
