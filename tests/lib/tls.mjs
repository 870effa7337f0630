// tls.mjs: test certificates made with the openssl CLI: a throwaway CA and
// leaf certificates for 127.0.0.1 / localhost signed by it (P-256 keys).
//
//   const ca = makeCa(dir);                      // { cert, key } paths
//   const leaf = makeLeaf(dir, 'one', ca);       // { cert, key, serial }
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

export function makeCa(dir) {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', ca.key, '-out', ca.cert, '-days', '2', '-subj', '/CN=rtm test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return ca;
}

export function makeLeaf(dir, name, ca) {
  const leaf = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`), ext = join(dir, `${name}.ext`);
  ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', leaf.key, '-out', csr, '-subj', `/CN=${name}`]);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  ossl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', leaf.cert,
    '-days', '2', '-extfile', ext]);
  leaf.serial = ossl(['x509', '-in', leaf.cert, '-noout', '-serial']).trim().replace(/^serial=/, '').toUpperCase();
  return leaf;
}
