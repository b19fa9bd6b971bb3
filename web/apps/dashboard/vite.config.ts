import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// The edge serves dist/ at `/` (tickmesh up); `npm run dev` proxies the API to a local edge.
export default defineConfig({
  plugins: [react()],
  resolve: {
    // Workspace packages from source: one build, one tree-shaking pass, no stale dist.
    alias: {
      "@tickmesh/client/msgpack": src("../../packages/client/src/msgpack.ts"),
      "@tickmesh/client": src("../../packages/client/src/index.ts"),
      "@tickmesh/react": src("../../packages/react/src/index.ts"),
      "@tickmesh/openfeature": src("../../packages/openfeature/src/index.ts"),
      "@tickmesh/react-ui/styles.css": src("../../packages/react-ui/src/styles.css"),
      "@tickmesh/react-ui/charts": src("../../packages/react-ui/src/charts.ts"),
      "@tickmesh/react-ui": src("../../packages/react-ui/src/index.ts"),
    },
  },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 400 },
  server: {
    proxy: {
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
      "/sse": "http://127.0.0.1:8000",
      "/poll": "http://127.0.0.1:8000",
      "/cmd": "http://127.0.0.1:8000",
      "/ticket": "http://127.0.0.1:8000",
      "/dev": "http://127.0.0.1:8000",
    },
  },
});
