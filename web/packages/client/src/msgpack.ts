import { decode, encode } from "@msgpack/msgpack";
import type { Codec } from "./codec.js";

/**
 * The `tickmesh.v1.msgpack` subprotocol: the same frames as JSON, as binary MessagePack.
 * Opt in with `new TickmeshClient({ codec: msgpackCodec, ... })`. Text messages still decode as
 * JSON, so an edge that picks the JSON subprotocol keeps working.
 */
export const msgpackCodec: Codec = {
  subprotocol: "tickmesh.v1.msgpack",
  encode: (frame) => encode(frame),
  decode: (data) => (typeof data === "string" ? JSON.parse(data) : decode(data instanceof Uint8Array ? data : new Uint8Array(data))),
};
