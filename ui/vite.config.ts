import { defineConfig } from "vitest/config";

// Tauri serves ui/dist over its own protocol: relative asset URLs, no remote content.
export default defineConfig({
  base: "./",
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", target: "es2021", sourcemap: false },
  test: { environment: "jsdom", include: ["tests/**/*.test.ts"] },
});
