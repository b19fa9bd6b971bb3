import { JSON_SUBPROTOCOL, jsonCodec } from "./codec.js";
import { framesOf, type ClientFrame } from "./frames.js";
import type { WebSocketLike } from "./platform.js";
import type { Transport, TransportFactory } from "./transport.js";

/**
 * WebSocket at `/ws`: the first choice. Offers the codec's subprotocol (JSON by default). Uses
 * `options.WebSocket` (the browser's, or one injected such as the `ws` package's in Node.js);
 * without one, or when it throws, the factory throws and the client moves to the next transport.
 */
export const webSocketTransport: TransportFactory = (options, handlers) => {
  const WebSocketImpl = options.WebSocket;
  if (!WebSocketImpl) throw new Error("no WebSocket in this environment");
  const url = new URL("/ws", options.baseUrl.replace(/^http/, "ws")).toString();
  const protocols = options.codec.subprotocol === JSON_SUBPROTOCOL ? [JSON_SUBPROTOCOL] : [options.codec.subprotocol, JSON_SUBPROTOCOL];
  // A constructor that throws (a `SecurityError` for ws: from an https page, a blocked scheme)
  // throws out of the factory: the client treats it as a failed open.
  const ws: WebSocketLike = new WebSocketImpl(url, protocols);
  let opened = false;
  let done = false;
  const finish = (code: number, reason: string) => {
    if (done) return;
    done = true;
    handlers.onClose({ code, reason, opened });
  };
  ws.binaryType = "arraybuffer";
  // The edge answers with the subprotocol it picked; encode for that one.
  const codecNow = () => (ws.protocol === options.codec.subprotocol ? options.codec : jsonCodec);
  ws.onopen = () => {
    opened = true;
    if (!done) handlers.onOpen();
  };
  ws.onmessage = (event: { data: unknown }) => {
    if (done) return;
    let decoded: unknown;
    try {
      decoded = options.codec.decode(event.data as string | ArrayBuffer);
    } catch {
      return; // undecodable: the server never sends it; ignore rather than die
    }
    for (const frame of framesOf(decoded)) {
      if (done) return;
      handlers.onFrame(frame);
    }
  };
  ws.onclose = (event: { code?: number; reason?: string }) => finish(event.code || 1006, event.reason || "closed");
  // `error` is always followed by `close`; nothing to do here.
  ws.onerror = () => {};
  const transport: Transport = {
    name: "websocket",
    send(frame: ClientFrame) {
      if (done || ws.readyState !== 1) return;
      ws.send(codecNow().encode(frame));
    },
    close() {
      done = true;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closing */
      }
    },
  };
  return transport;
};
