// Builds the app from web/ into public/, which the worker serves as static assets.
// vitest runs the unit tests in web/test/ with the same config.
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: import.meta.dirname,
  publicDir: "static",
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: "../public",
    emptyOutDir: true,
    // Everything in files of its own: the CSP allows no inline script or style.
    assetsInlineLimit: 0,
    target: "es2022",
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
