// der.js: a small DER reader (X.690) with just enough of X.509 (RFC 5280) to show a
// certificate's names, validity, key, usages and URLs, and a CRL's dates, number and
// number of entries, without any library. Everything it reads comes from the node,
// but it still checks every length against its container and throws DerError on
// anything malformed, so the pages can show "could not decode" instead of guessing.

export class DerError extends Error {}

/** The TLV at `pos` within [pos, limit): {tag, start, end} (start..end is the content). */
export function tlv(buf, pos, limit = buf.length) {
  if (pos + 2 > limit) throw new DerError('truncated');
  const tag = buf[pos];
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not expected here');
  let len = buf[pos + 1];
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++];
  }
  const end = p + len;
  if (end > limit) throw new DerError('truncated');
  return { tag, start: p, end };
}

/** The TLVs inside a constructed one. */
export function children(buf, node) {
  const out = [];
  for (let p = node.start; p < node.end;) {
    const c = tlv(buf, p, node.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** How many TLVs a constructed one holds, reading only their headers. */
export function count(buf, node) {
  let n = 0;
  for (let p = node.start; p < node.end; n++) p = tlv(buf, p, node.end).end;
  return n;
}

function bytes(buf, node) {
  return buf.subarray(node.start, node.end);
}

/** Hex of a primitive's content (an INTEGER's two's complement, without a leading 00). */
export function hex(buf, node) {
  let b = bytes(buf, node);
  if (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** A non-negative INTEGER as a decimal string. */
export function integer(buf, node) {
  const h = hex(buf, node);
  return h ? BigInt(`0x${h}`).toString() : '0';
}

/** An OBJECT IDENTIFIER in dotted form. */
export function oid(buf, node) {
  if (node.tag !== 0x06) throw new DerError('expected an OID');
  const b = bytes(buf, node);
  const arcs = [];
  let v = 0n;
  for (const x of b) {
    v = (v << 7n) | BigInt(x & 0x7f);
    if (!(x & 0x80)) {
      if (arcs.length === 0) {
        const first = v < 80n ? v / 40n : 2n;
        arcs.push(first, v - first * 40n);
      } else {
        arcs.push(v);
      }
      v = 0n;
    }
  }
  return arcs.join('.');
}

/** UTCTime or GeneralizedTime as a Date. */
export function time(buf, node) {
  const t = new TextDecoder('ascii').decode(bytes(buf, node));
  let m;
  if (node.tag === 0x17 && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(t))) {
    const yy = Number(m[1]);
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, m[2] - 1, m[3], m[4], m[5], m[6]));
  }
  if (node.tag === 0x18 && (m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z$/.exec(t))) {
    return new Date(Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6]));
  }
  throw new DerError(`unexpected time ${t}`);
}

/** A directory string (UTF8, Printable, IA5, Teletex, BMP, Universal) as text. */
export function string(buf, node) {
  const b = bytes(buf, node);
  if (node.tag === 0x1e) { // BMPString: UTF-16BE
    let out = '';
    for (let i = 0; i + 1 < b.length; i += 2) out += String.fromCharCode((b[i] << 8) | b[i + 1]);
    return out;
  }
  if (node.tag === 0x1c) { // UniversalString: UTF-32BE
    let out = '';
    for (let i = 0; i + 3 < b.length; i += 4) out += String.fromCodePoint(((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0);
    return out;
  }
  return new TextDecoder(node.tag === 0x14 ? 'latin1' : 'utf-8').decode(b);
}

const ATTRS = {
  '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L',
  '2.5.4.8': 'ST', '2.5.4.9': 'street', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title',
  '2.5.4.42': 'GN', '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.1': 'UID',
};

/** A Name as "O=Example, CN=Example CA", in the order the certificate encodes it. */
export function name(buf, node) {
  return children(buf, node).map((rdn) => children(buf, rdn).map((atv) => {
    const [type, value] = children(buf, atv);
    const t = oid(buf, type);
    return `${ATTRS[t] || t}=${string(buf, value)}`;
  }).join('+')).join(', ');
}

const KEYS = {
  '1.2.840.113549.1.1.1': 'RSA', '1.2.840.10045.2.1': 'EC', '1.3.101.112': 'Ed25519', '1.3.101.113': 'Ed448',
};
const CURVES = { '1.2.840.10045.3.1.7': 'P-256', '1.3.132.0.34': 'P-384', '1.3.132.0.35': 'P-521' };
const SIGS = {
  '1.2.840.10045.4.3.2': 'ECDSA with SHA-256', '1.2.840.10045.4.3.3': 'ECDSA with SHA-384',
  '1.2.840.10045.4.3.4': 'ECDSA with SHA-512', '1.2.840.113549.1.1.11': 'RSA with SHA-256',
  '1.2.840.113549.1.1.12': 'RSA with SHA-384', '1.2.840.113549.1.1.13': 'RSA with SHA-512',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS', '1.3.101.112': 'Ed25519',
};
const EKUS = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth', '1.3.6.1.5.5.7.3.2': 'clientAuth', '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection', '1.3.6.1.5.5.7.3.8': 'timeStamping', '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};
const KEY_USAGE = ['digitalSignature', 'contentCommitment', 'keyEncipherment', 'dataEncipherment',
  'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];
const EXTENSIONS = {
  '2.5.29.14': 'subjectKeyIdentifier', '2.5.29.15': 'keyUsage', '2.5.29.17': 'subjectAltName',
  '2.5.29.19': 'basicConstraints', '2.5.29.30': 'nameConstraints', '2.5.29.31': 'cRLDistributionPoints',
  '2.5.29.32': 'certificatePolicies', '2.5.29.35': 'authorityKeyIdentifier', '2.5.29.37': 'extKeyUsage',
  '2.5.29.46': 'freshestCRL', '1.3.6.1.5.5.7.1.1': 'authorityInfoAccess', '1.3.6.1.5.5.7.48.1.5': 'ocspNoCheck',
};

/** Every URI (GeneralName [6]) anywhere inside `node`. */
function uris(buf, node, out = []) {
  if (node.tag === 0x86) out.push(new TextDecoder('ascii').decode(bytes(buf, node)));
  else if (node.tag & 0x20) for (const c of children(buf, node)) uris(buf, c, out);
  return out;
}

/** The named bits of a BIT STRING, most significant first. */
function bits(buf, node, names) {
  const b = bytes(buf, node);
  const out = [];
  for (let i = 0; i < names.length; i++) {
    const byte = b[1 + (i >> 3)];
    if (byte !== undefined && byte & (0x80 >> (i & 7))) out.push(names[i]);
  }
  return out;
}

function keyOf(buf, spki) {
  const [alg, pub] = children(buf, spki);
  const [algOid, params] = children(buf, alg);
  const kind = oid(buf, algOid);
  const label = KEYS[kind] || kind;
  if (label === 'EC' && params && params.tag === 0x06) return `EC ${CURVES[oid(buf, params)] || oid(buf, params)}`;
  if (label === 'RSA') {
    const rsa = tlv(buf, pub.start + 1, pub.end); // skip the unused-bits octet
    const [modulus] = children(buf, rsa);
    return `RSA ${hex(buf, modulus).length * 4} bits`;
  }
  return label;
}

/** The fields of a certificate worth showing. */
export function decodeCertificate(der) {
  const cert = tlv(der, 0);
  const [tbs, sigAlg] = children(der, cert);
  const f = children(der, tbs);
  let i = 0;
  if (f[i].tag === 0xa0) i++; // version
  const serial = hex(der, f[i++]);
  i++; // signature algorithm, repeated below
  const issuer = name(der, f[i++]);
  const [nb, na] = children(der, f[i++]);
  const subject = name(der, f[i++]);
  const key = keyOf(der, f[i++]);
  const out = {
    serial, issuer, subject, key,
    notBefore: time(der, nb), notAfter: time(der, na),
    signature: (() => { const o = oid(der, children(der, sigAlg)[0]); return SIGS[o] || o; })(),
    extensions: [], keyUsage: [], extKeyUsage: [], ca: false, crl: [], aia: [],
  };
  const ext = f.slice(i).find((n) => n.tag === 0xa3);
  if (ext) {
    for (const e of children(der, children(der, ext)[0])) {
      const parts = children(der, e);
      const id = oid(der, parts[0]);
      const critical = parts.length === 3 && der[parts[1].start] !== 0;
      const value = tlv(der, parts[parts.length - 1].start, parts[parts.length - 1].end);
      out.extensions.push(`${EXTENSIONS[id] || id}${critical ? ' (critical)' : ''}`);
      if (id === '2.5.29.15') out.keyUsage = bits(der, value, KEY_USAGE);
      if (id === '2.5.29.37') out.extKeyUsage = children(der, value).map((n) => { const o = oid(der, n); return EKUS[o] || o; });
      if (id === '2.5.29.19') { const c = children(der, value); out.ca = c.length > 0 && c[0].tag === 0x01 && der[c[0].start] !== 0; }
      if (id === '2.5.29.31') out.crl = uris(der, value);
      if (id === '1.3.6.1.5.5.7.1.1') out.aia = uris(der, value);
    }
  }
  return out;
}

/** A CRL's issuer, dates, number, delta base and number of entries. */
export function decodeCrl(der) {
  const list = tlv(der, 0);
  const tbs = tlv(der, list.start, list.end);
  const f = children(der, tbs);
  let i = 0;
  if (f[i].tag === 0x02) i++; // version
  i++; // signature algorithm
  const issuer = name(der, f[i++]);
  const thisUpdate = time(der, f[i++]);
  let nextUpdate = null;
  if (f[i] && (f[i].tag === 0x17 || f[i].tag === 0x18)) nextUpdate = time(der, f[i++]);
  let entries = 0;
  if (f[i] && f[i].tag === 0x30) entries = count(der, f[i++]);
  const out = { issuer, thisUpdate, nextUpdate, entries, number: null, deltaOf: null };
  const ext = f.slice(i).find((n) => n.tag === 0xa0);
  if (ext) {
    for (const e of children(der, children(der, ext)[0])) {
      const parts = children(der, e);
      const id = oid(der, parts[0]);
      const value = tlv(der, parts[parts.length - 1].start, parts[parts.length - 1].end);
      if (id === '2.5.29.20') out.number = integer(der, value);
      if (id === '2.5.29.27') out.deltaOf = integer(der, value);
    }
  }
  return out;
}
