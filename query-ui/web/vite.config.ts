// The UI bundle: one hashed JS and one hashed CSS file under /ui/assets/, embedded into the
// binary by query-ui's build.rs. No inline scripts (the server's CSP forbids them).
// `npm run dev` serves the sources with hot reload, proxying the APIs to a running Tarsier
// (TARSIER_API, default http://127.0.0.1:9470).
import { defineConfig } from "vite";

const api = process.env.TARSIER_API ?? "http://127.0.0.1:9470";
const proxy = Object.fromEntries(["/api", "/loki", "/metrics"].map((p) => [p, { target: api, changeOrigin: true, ws: p === "/loki" }]));

export default defineConfig({
  base: "/ui/",
  build: {
    assetsDir: "assets",
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
    sourcemap: false,
  },
  server: { proxy },
  preview: { proxy },
});
