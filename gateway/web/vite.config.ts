// The dashboard's build: hashed file names under assets/ (the gateway caches them for a
// year) and a .br and .gz copy of each text file, which the gateway sends as they are.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

function precompress(): Plugin {
  return {
    name: "tradebot-precompress",
    apply: "build",
    closeBundle() {
      const walk = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
          e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
        );
      for (const file of walk("dist")) {
        if (!/\.(js|css|html|svg|json)$/.test(file)) continue;
        const body = readFileSync(file);
        if (body.length < 512) continue;
        writeFileSync(file + ".gz", gzipSync(body, { level: 9 }));
        writeFileSync(
          file + ".br",
          brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
        );
      }
    },
  };
}

export default defineConfig({
  base: "/",
  plugins: [precompress()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a gateway on :5000 (./scripts/up).
    proxy: Object.fromEntries(
      ["/market", "/user", "/trading", "/analysis", "/notifications", "/health"].map((p) => [
        p,
        { target: "http://127.0.0.1:5000", ws: true },
      ]),
    ),
  },
});
