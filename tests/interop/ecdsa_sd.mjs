// Digital Bazaar's ecdsa-sd-2023 implementation, driven by the interop tests and the bench.
//
// Reads one JSON request on stdin, writes one JSON answer on stdout:
//   {"op": "sign", "document", "secretKeyMultibase", "publicKeyMultibase",
//    "mandatoryPointers", "created"}              -> signed document
//   {"op": "derive", "document", "selectivePointers"} -> derived document
//   {"op": "verify", "document"}                    -> {"verified": bool, "error": str|null}
//   {"op": "bench", "document", ..., "iterations"}  -> {"sign": ops/s, "derive": ..., "verify": ...}
// Every request carries "contexts": {url: file path}; the document loader serves only those
// and did:key P-256 verification methods: it never touches the network.
// The packages resolve from contracts/node_modules (installed by `npm ci --prefix contracts`).
import {createRequire} from 'node:module';
import {readFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', '..', 'contracts', 'package.json'));
const load = async name => import(pathToFileURL(require.resolve(name)).href);

const EcdsaMultikey = await load('@digitalbazaar/ecdsa-multikey');
const {DataIntegrityProof} = await load('@digitalbazaar/data-integrity');
const sdSuite = await load('@digitalbazaar/ecdsa-sd-2023-cryptosuite');
const jsigs = (await load('jsonld-signatures')).default;
const {purposes: {AssertionProofPurpose}} = jsigs;

const request = JSON.parse(readFileSync(0, 'utf8'));
const contexts = new Map();
for(const [url, path] of Object.entries(request.contexts)) {
  contexts.set(url, JSON.parse(readFileSync(path, 'utf8')));
}

async function documentLoader(url) {
  if(contexts.has(url)) {
    return {contextUrl: null, documentUrl: url, document: structuredClone(contexts.get(url))};
  }
  if(url.startsWith('did:key:zDn')) {
    const did = url.split('#')[0];
    const fingerprint = did.slice('did:key:'.length);
    const key = await EcdsaMultikey.from({
      id: `${did}#${fingerprint}`, controller: did, publicKeyMultibase: fingerprint
    });
    const method = await key.export({publicKey: true, includeContext: true});
    if(url.includes('#')) {
      return {contextUrl: null, documentUrl: url, document: method};
    }
    delete method['@context'];
    return {contextUrl: null, documentUrl: url, document: {
      '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
      id: did, verificationMethod: [method], assertionMethod: [method.id]
    }};
  }
  throw new Error(`document loader refuses ${url}`);
}

async function sign(req) {
  const did = `did:key:${req.publicKeyMultibase}`;
  const key = await EcdsaMultikey.from({
    id: `${did}#${req.publicKeyMultibase}`, controller: did,
    publicKeyMultibase: req.publicKeyMultibase, secretKeyMultibase: req.secretKeyMultibase
  });
  const suite = new DataIntegrityProof({
    signer: key.signer(), date: req.created,
    cryptosuite: sdSuite.createSignCryptosuite({mandatoryPointers: req.mandatoryPointers})
  });
  return jsigs.sign(structuredClone(req.document),
    {suite, purpose: new AssertionProofPurpose(), documentLoader});
}

async function derive(req) {
  const suite = new DataIntegrityProof({
    cryptosuite: sdSuite.createDiscloseCryptosuite({selectivePointers: req.selectivePointers})
  });
  return jsigs.derive(structuredClone(req.document),
    {suite, purpose: new AssertionProofPurpose(), documentLoader});
}

async function verify(req) {
  const suite = new DataIntegrityProof({cryptosuite: sdSuite.createVerifyCryptosuite()});
  const result = await jsigs.verify(structuredClone(req.document),
    {suite, purpose: new AssertionProofPurpose(), documentLoader});
  const error = result.error ? String(result.error.errors?.[0] ?? result.error) : null;
  return {verified: result.verified, error};
}

async function rate(fn, iterations) {
  await fn();
  const start = process.hrtime.bigint();
  for(let i = 0; i < iterations; i++) {
    await fn();
  }
  return iterations / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function bench(req) {
  const signed = await sign(req);
  const derived = await derive({...req, document: signed});
  const n = req.iterations;
  return {
    sign: await rate(() => sign(req), n),
    derive: await rate(() => derive({...req, document: signed}), n),
    verify: await rate(() => verify({...req, document: derived}), n)
  };
}

const ops = {sign, derive, verify, bench};
const answer = await ops[request.op](request);
process.stdout.write(JSON.stringify(answer));
