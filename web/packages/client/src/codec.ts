import type { ClientFrame } from "./frames.js";

/**
 * How frames are encoded on a WebSocket. JSON is built in; MessagePack is an optional codec
 * (`@tickmesh/client/msgpack`) so that applications that do not use it do not ship it.
 */
export interface Codec {
  /** The `Sec-WebSocket-Protocol` to offer. */
  readonly subprotocol: string;
  encode(frame: ClientFrame): string | Uint8Array;
  /** Decode one WebSocket message (text or binary) into a frame or a batch. */
  decode(data: string | ArrayBuffer | Uint8Array): unknown;
}

export const JSON_SUBPROTOCOL = "tickmesh.v1.json";

/** The codec of a subprotocol name (MessagePack loaded on demand), or undefined for another. */
export async function codecNamed(subprotocol: string): Promise<Codec | undefined> {
  if (subprotocol === JSON_SUBPROTOCOL) return jsonCodec;
  if (subprotocol === "tickmesh.v1.msgpack") return (await import("./msgpack.js")).msgpackCodec;
  return undefined;
}

export const jsonCodec: Codec = {
  subprotocol: JSON_SUBPROTOCOL,
  encode: (frame) => JSON.stringify(frame),
  decode: (data) => JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)),
};
