// A static file server for the page (any static server will do; this one needs only Node).
// Usage: node examples/dapp/serve.mjs [--port 8080] [--host 127.0.0.1]   (builds dist/ first)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from './build.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.css': 'text/css',
  '.png': 'image/png',
};

/** Serves examples/dapp on host:port (port 0: any free one); resolves to the listening server. */
export function serve({ host = '127.0.0.1', port = 0 } = {}) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(here, path.endsWith('/') ? path + 'index.html' : path));
    if (!file.startsWith(here + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  await build();
  const server = await serve({ host: arg('--host', '127.0.0.1'), port: Number(arg('--port', 8080)) });
  const { address, port } = server.address();
  console.log(`serving examples/dapp on http://${address}:${port}/ (add ?rpc=http://127.0.0.1:8545)`);
}
