import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Unit tests of every package; packages import each other from source, so no build is needed.
export default defineConfig({
  resolve: {
    alias: {
      "@tickmesh/client/msgpack": src("./packages/client/src/msgpack.ts"),
      "@tickmesh/client": src("./packages/client/src/index.ts"),
      "@tickmesh/react": src("./packages/react/src/index.ts"),
      "@tickmesh/openfeature": src("./packages/openfeature/src/index.ts"),
      "@tickmesh/react-ui/charts": src("./packages/react-ui/src/charts.ts"),
      "@tickmesh/react-ui": src("./packages/react-ui/src/index.ts"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.{ts,tsx}"],
    environment: "node",
    testTimeout: 10000,
  },
});
