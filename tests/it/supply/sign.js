// A Sigstore bundle made offline by sigstore-js: @sigstore/sign's DSSE bundle builder, witnessed
// (an intoto entry) by @sigstore/mock's Rekor (nock, in process) whose key this script makes, so
// the trust root it writes holds exactly that log. Usage:
//   node sign.js SUBJECT_SHA256_HEX OUT_DIR [CERTIFICATE_PEM PRIVATE_KEY_PEM AUTHORITY_PEM]
// writes OUT_DIR/bundle.sigstore.json, OUT_DIR/key.pub and OUT_DIR/trusted_root.json. Without a
// certificate it signs with a fresh P-256 key (a keyed bundle); with one, it signs with that
// certificate's private key, puts the certificate in the bundle, and the trust root names
// AUTHORITY_PEM as its certificate authority.
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { mockRekor } = require('@sigstore/mock');
const { DSSEBundleBuilder, RekorWitness } = require('@sigstore/sign');
const { bundleToJSON } = require('@sigstore/bundle');

async function main() {
  const [subject, out, certFile, keyFile, authorityFile] = process.argv.slice(2);
  const rekorURL = 'https://rekor.pkg-test.invalid';
  const rekorKeys = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await mockRekor({ baseURL: rekorURL, keyPair: rekorKeys });

  const signing = keyFile
    ? { privateKey: crypto.createPrivateKey(fs.readFileSync(keyFile)) }
    : crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const publicPem = crypto.createPublicKey(signing.privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const certificate = certFile && new crypto.X509Certificate(fs.readFileSync(certFile));
  const authority = authorityFile && new crypto.X509Certificate(fs.readFileSync(authorityFile));
  const key = certificate
    ? { $case: 'x509Certificate', certificate: certificate.toString() }
    : { $case: 'publicKey', publicKey: publicPem, hint: '' };
  const signer = {
    sign: async (data) => ({ signature: crypto.sign('sha256', data, signing.privateKey), key }),
  };
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'pkg-test', digest: { sha256: subject } }],
    predicateType: 'https://slsa.dev/provenance/v1',
    predicate: { buildDefinition: { buildType: 'https://pkg.test/build' } },
  };
  const builder = new DSSEBundleBuilder({
    signer,
    witnesses: [new RekorWitness({ rekorBaseURL: rekorURL, entryType: 'intoto' })],
  });
  const bundle = await builder.create({
    data: Buffer.from(JSON.stringify(statement)),
    type: 'application/vnd.in-toto+json',
  });

  const rekorDer = rekorKeys.publicKey.export({ type: 'spki', format: 'der' });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [{
      baseUrl: rekorURL,
      hashAlgorithm: 'SHA2_256',
      publicKey: {
        rawBytes: rekorDer.toString('base64'),
        keyDetails: 'PKIX_ECDSA_P256_SHA_256',
        validFor: { start: '2000-01-01T00:00:00Z' },
      },
      logId: { keyId: crypto.createHash('sha256').update(rekorDer).digest('base64') },
    }],
    certificateAuthorities: authority ? [{
      subject: { organization: 'pkg-test', commonName: 'pkg-test' },
      uri: 'https://fulcio.pkg-test.invalid',
      certChain: { certificates: [{ rawBytes: authority.raw.toString('base64') }] },
      validFor: { start: '2000-01-01T00:00:00Z' },
    }] : [],
    ctlogs: [],
    timestampAuthorities: [],
  };
  fs.writeFileSync(path.join(out, 'bundle.sigstore.json'), JSON.stringify(bundleToJSON(bundle)));
  fs.writeFileSync(path.join(out, 'key.pub'), publicPem);
  fs.writeFileSync(path.join(out, 'trusted_root.json'), JSON.stringify(trustedRoot));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
