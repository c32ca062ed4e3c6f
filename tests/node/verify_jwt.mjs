// Independent ES256 verifier for egw's tokens, on npm `jose`.
// usage: node verify_jwt.mjs --pem PUBKEY.pem [--jwk PUBKEY.jwk.json] < tokens
// Reads one compact JWS per line; writes one JSON line per token:
//   {"ok":true,"via":"pem","header":{...},"payload":{...}}   or   {"ok":false,"via":"pem","error":"..."}
// (with --jwk, a second line per token for the JWK key).
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { importJWK, importSPKI, jwtVerify } from 'jose';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const pemFile = opt('--pem');
const jwkFile = opt('--jwk');
if (!pemFile) {
  console.error('usage: node verify_jwt.mjs --pem PUBKEY.pem [--jwk PUBKEY.jwk.json] < tokens');
  process.exit(2);
}

const keys = [['pem', await importSPKI(readFileSync(pemFile, 'utf8'), 'ES256')]];
if (jwkFile) keys.push(['jwk', await importJWK(JSON.parse(readFileSync(jwkFile, 'utf8')), 'ES256')]);

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  const token = line.trim();
  if (!token) continue;
  for (const [via, key] of keys) {
    try {
      const { payload, protectedHeader } = await jwtVerify(token, key, { algorithms: ['ES256'] });
      console.log(JSON.stringify({ ok: true, via, header: protectedHeader, payload }));
    } catch (e) {
      console.log(JSON.stringify({ ok: false, via, error: `${e.code || e.name}: ${e.message}` }));
    }
  }
}
