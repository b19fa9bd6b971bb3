export { TickmeshFlagProvider } from "./provider.js";
export { followCodecFlag, rememberedMsgpack, type CodecFlagOptions } from "./codec.js";
