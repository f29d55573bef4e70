//! The backup file: a plaintext header anyone may read (what the backup holds, without
//! the key) and the state snapshot encrypted with AES-256-GCM under a fresh backup key,
//! in chunks so that a backup of any size streams through. The header also carries the
//! cluster's KEK sealed under the backup key, so the file restores on new hardware.
//!
//! ```text
//! "HAPKIBAK" [format u8 = 1] [header length u32] [header: JSON Header]
//! chunks: [length u32] [AES-256-GCM ciphertext and tag of up to CHUNK bytes]
//! ```
//! Two keys are derived from the backup key with HKDF-SHA-256 and the header's salt: one
//! seals the KEK, one the chunks. Chunk `i` has nonce `i` and, as associated data, the
//! SHA-256 of the preamble and header, `i` and whether it is the last chunk: a changed
//! header or chunk, chunks swapped, removed or cut short, or bytes after the last chunk
//! fail to open. aws-lc-rs does the cryptography; this module only lays the file out.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::{digest, hkdf};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::DomainError;

const MAGIC: &[u8] = b"HAPKIBAK";
/// The layout this build writes and reads.
pub const FORMAT: u8 = 1;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 256 * 1024;
const TAG: usize = 16;
const MAX_HEADER: usize = 1024 * 1024;
/// How a backup key is written for people: `hbk_` and 43 base64url characters.
const KEY_PREFIX: &str = "hbk_";

/// The key of one backup, 256 bits; never stored by hapki.
#[derive(Clone)]
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BackupKey(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The key as it is shown once and written to a key file.
    pub fn to_text(&self) -> String {
        format!("{KEY_PREFIX}{}", B64.encode(self.0))
    }
    /// Reads a key in the form [`BackupKey::to_text`] writes (surrounding space ignored).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::Invalid(format!("a backup key is {KEY_PREFIX} and 43 base64url characters"));
        let body = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let bytes = B64.decode(body).map_err(|_| bad())?;
        Ok(BackupKey(bytes.try_into().map_err(|_| bad())?))
    }

    fn derive(&self, salt: &[u8], info: &'static str) -> LessSafeKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.0);
        let info = [info.as_bytes()];
        let okm = prk.expand(&info, &AES_256_GCM).expect("32 bytes from HKDF");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// The cluster KEK sealed under the backup key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKek {
    pub id: u32,
    /// Base64url of the 12-byte nonce.
    pub nonce: String,
    /// Base64url of the ciphertext and tag.
    pub sealed: String,
}

/// How many of each thing the backup holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub certificates: u64,
    pub revoked: u64,
    pub issuers: u64,
    pub profiles: u64,
    pub tokens: u64,
    pub archived_keys: u64,
    pub recovery_requests: u64,
    pub nodes: u64,
    pub backups: u64,
}

/// What the file says about itself, readable without the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// A random id, also the backup's record in the replicated state.
    pub id: String,
    pub cluster_id: String,
    /// The last applied log index the snapshot holds, its term and leader.
    pub index: u64,
    pub term: u64,
    pub leader: u64,
    /// When the snapshot was taken (seconds since 1970).
    pub created_at: u64,
    /// The state digest at `index`, which a restored node must reproduce.
    pub digest: String,
    /// State-machine rows in the snapshot.
    pub rows: u64,
    pub counts: Counts,
    /// The hapki version that wrote the backup.
    pub version: String,
    /// Base64url of the HKDF salt.
    pub salt: String,
    pub kek: SealedKek,
    /// The backup key encrypted to a recipient's RSA key (a JWE), when the backup was made
    /// for one; the key is then never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

fn seal_kek_aad(id: u32) -> Vec<u8> {
    format!("hapki backup kek {id}").into_bytes()
}

impl Header {
    /// Seals KEK `id` under `key` into [`Header::kek`], with `salt` and `nonce` from the caller.
    pub fn seal_kek(key: &BackupKey, salt: [u8; 16], nonce: [u8; 12], id: u32, kek: &[u8; 32]) -> (String, SealedKek) {
        let k = key.derive(&salt, "hapki backup kek");
        let mut body = kek.to_vec();
        k.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(seal_kek_aad(id)),
            &mut body,
        )
        .expect("AES-GCM seals 32 bytes");
        (
            B64.encode(salt),
            SealedKek {
                id,
                nonce: B64.encode(nonce),
                sealed: B64.encode(body),
            },
        )
    }

    /// Opens the KEK with `key`; the wrong key is told apart from a damaged header.
    pub fn open_kek(&self, key: &BackupKey) -> Result<(u32, [u8; 32]), DomainError> {
        let salt = self.salt()?;
        let nonce: [u8; 12] = B64
            .decode(&self.kek.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| damaged("the sealed KEK's nonce"))?;
        let mut body = B64.decode(&self.kek.sealed).map_err(|_| damaged("the sealed KEK"))?;
        let k = key.derive(&salt, "hapki backup kek");
        let plain = k
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(seal_kek_aad(self.kek.id)),
                &mut body,
            )
            .map_err(|_| {
                DomainError::Invalid(
                    "this key does not open the backup: give the key shown (or written with --key-out) when \
                     this backup was made, or the recipient's private key"
                        .into(),
                )
            })?;
        let kek: [u8; 32] = plain.try_into().map_err(|_| damaged("the sealed KEK"))?;
        Ok((self.kek.id, kek))
    }

    fn salt(&self) -> Result<Vec<u8>, DomainError> {
        B64.decode(&self.salt).map_err(|_| damaged("the salt"))
    }
}

/// The length of a backup file with `header` around a snapshot of `plain` bytes.
pub fn file_len(header: &Header, plain: u64) -> Result<u64, DomainError> {
    let json = serde_json::to_vec(header).map_err(|e| DomainError::Invalid(e.to_string()))?;
    let chunks = plain / CHUNK as u64 + 1;
    Ok(preamble(&json).len() as u64 + plain + chunks * (4 + TAG as u64))
}

/// The RSA public key (SubjectPublicKeyInfo DER) of a recipient given as a PEM public key
/// or certificate, and its SHA-256 in hex.
pub fn recipient_key(pem_text: &[u8]) -> Result<(Vec<u8>, String), DomainError> {
    let spki = match crate::pem::decode_one(pem_text, &[crate::pem::PemLabel::Certificate]) {
        Ok(cert) => der::Encode::to_der(&crate::issue::summarize(&cert)?.spki)
            .map_err(|e| DomainError::Invalid(e.to_string()))?,
        Err(_) => crate::pem::decode_all(std::str::from_utf8(pem_text).unwrap_or_default())?
            .into_iter()
            .find(|(label, _)| label == "PUBLIC KEY")
            .map(|(_, der)| der)
            .ok_or_else(|| {
                DomainError::Invalid(
                    "a backup recipient is an RSA public key (PEM PUBLIC KEY) or a certificate (PEM)".into(),
                )
            })?,
    };
    aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).map_err(|_| {
        DomainError::Invalid("a backup recipient must be an RSA key (RSA-OAEP carries the backup key)".into())
    })?;
    let fingerprint = hex::encode(digest::digest(&digest::SHA256, &spki).as_ref());
    Ok((spki, fingerprint))
}

/// The backup key encrypted to a recipient's RSA key (see [`recipient_key`]).
pub fn seal_key_to(spki: &[u8], key: &BackupKey) -> Result<String, DomainError> {
    crate::jwe::encrypt(spki, key.as_bytes())
}

/// The backup key of `header`, opened with the recipient's RSA private key.
pub fn open_key_with(header: &Header, pkcs8: &[u8]) -> Result<BackupKey, DomainError> {
    let jwe = header.recipient.as_deref().ok_or_else(|| {
        DomainError::Invalid(
            "this backup was not made for a recipient: give the backup key shown when it was made".into(),
        )
    })?;
    let bytes = crate::jwe::decrypt(pkcs8, jwe)
        .map_err(|_| DomainError::Invalid("this private key is not the recipient's the backup was made for".into()))?;
    Ok(BackupKey(bytes.try_into().map_err(|_| damaged("the recipient's key"))?))
}

fn damaged(what: &str) -> DomainError {
    DomainError::Invalid(format!("the backup is damaged: {what} cannot be read"))
}

fn invalid_data(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

/// The associated data of chunk `index`.
fn chunk_aad(header_hash: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = header_hash.to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(last as u8);
    aad
}

fn chunk_nonce(index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Writes a backup: the preamble and header at once, then the snapshot written into it
/// in chunks; [`Writer::finish`] seals the last chunk.
pub struct Writer<W: Write> {
    out: W,
    key: LessSafeKey,
    header_hash: Vec<u8>,
    buf: Vec<u8>,
    index: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, key: &BackupKey, header: &Header) -> Result<Self, DomainError> {
        let json = serde_json::to_vec(header).map_err(|e| DomainError::Invalid(e.to_string()))?;
        let preamble = preamble(&json);
        out.write_all(&preamble)
            .map_err(|e| DomainError::Invalid(e.to_string()))?;
        let salt = header.salt()?;
        Ok(Writer {
            out,
            key: key.derive(&salt, "hapki backup data"),
            header_hash: digest::digest(&digest::SHA256, &preamble).as_ref().to_vec(),
            buf: Vec::with_capacity(CHUNK + TAG),
            index: 0,
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let aad = chunk_aad(&self.header_hash, self.index, last);
        self.key
            .seal_in_place_append_tag(chunk_nonce(self.index), Aad::from(aad), &mut self.buf)
            .map_err(|_| io::Error::other("AES-GCM refused a chunk"))?;
        self.out.write_all(&(self.buf.len() as u32).to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn preamble(header_json: &[u8]) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.push(FORMAT);
    p.extend_from_slice(&(header_json.len() as u32).to_be_bytes());
    p.extend_from_slice(header_json);
    p
}

/// Reads the preamble and header of a backup, leaving `input` at the first chunk. Returns
/// the header and the hash the chunks are bound to.
pub fn read_header(input: &mut impl Read) -> Result<(Header, Vec<u8>), DomainError> {
    let not_backup = || DomainError::Invalid("not a hapki backup file".into());
    let mut fixed = [0u8; 13];
    input.read_exact(&mut fixed).map_err(|_| not_backup())?;
    if &fixed[..8] != MAGIC {
        return Err(not_backup());
    }
    match fixed[8] {
        FORMAT => {}
        f if f > FORMAT => {
            return Err(DomainError::Invalid(format!(
                "the backup is of format {f}, written by a newer hapki; this build reads format {FORMAT}"
            )))
        }
        f => return Err(DomainError::Invalid(format!("a backup of unknown format {f}"))),
    }
    let len = u32::from_be_bytes(fixed[9..13].try_into().expect("4 bytes")) as usize;
    if len > MAX_HEADER {
        return Err(damaged("the header (over 1 MiB)"));
    }
    let mut json = vec![0u8; len];
    input
        .read_exact(&mut json)
        .map_err(|_| DomainError::Invalid("the backup is cut short inside its header".into()))?;
    let header: Header = serde_json::from_slice(&json).map_err(|_| damaged("the header"))?;
    let hash = digest::digest(&digest::SHA256, &preamble(&json)).as_ref().to_vec();
    Ok((header, hash))
}

/// Opens a backup with its key: reads the header, checks the key against the sealed KEK,
/// and returns the header and a reader of the snapshot.
pub fn open<R: Read>(mut input: R, key: &BackupKey) -> Result<(Header, Reader<R>), DomainError> {
    let (header, hash) = read_header(&mut input)?;
    header.open_kek(key)?;
    let reader = Reader::new(input, key, &header, hash)?;
    Ok((header, reader))
}

/// Reads the snapshot out of a backup, after [`read_header`]: every chunk is checked
/// before its bytes are given out, and the end is reached only at a sealed last chunk
/// followed by nothing.
pub struct Reader<R: Read> {
    input: R,
    key: LessSafeKey,
    header_hash: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    index: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R, key: &BackupKey, header: &Header, header_hash: Vec<u8>) -> Result<Self, DomainError> {
        Ok(Reader {
            input,
            key: key.derive(&header.salt()?, "hapki backup data"),
            header_hash,
            plain: Vec::new(),
            pos: 0,
            index: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let cut = || invalid_data("the backup is cut short: its last chunk is missing");
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|_| cut())?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(invalid_data(format!("the backup is damaged at chunk {}", self.index)));
        }
        let mut body = vec![0u8; len];
        self.input.read_exact(&mut body).map_err(|_| cut())?;
        let mut opened = None;
        for last in [false, true] {
            let mut attempt = body.clone();
            let aad = chunk_aad(&self.header_hash, self.index, last);
            if let Ok(p) = self
                .key
                .open_in_place(chunk_nonce(self.index), Aad::from(aad), &mut attempt)
            {
                let n = p.len();
                attempt.truncate(n);
                self.plain = attempt;
                opened = Some(last);
                break;
            }
        }
        let Some(last) = opened else {
            return Err(invalid_data(format!(
                "the backup was altered: chunk {} (from byte {} of the snapshot) does not open",
                self.index,
                self.index as usize * CHUNK
            )));
        };
        self.pos = 0;
        self.index += 1;
        if last {
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(invalid_data("the backup has bytes after its last chunk"));
            }
            self.done = true;
        }
        Ok(())
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &BackupKey) -> Header {
        let (salt, kek) = Header::seal_kek(key, [7; 16], [9; 12], 3, &[42; 32]);
        Header {
            id: "b1".into(),
            cluster_id: "c".into(),
            index: 10,
            term: 2,
            leader: 1,
            created_at: 1000,
            digest: "d".into(),
            rows: 5,
            counts: Counts::default(),
            version: "0".into(),
            salt,
            kek,
            recipient: None,
        }
    }

    fn backup(key: &BackupKey, data: &[u8]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), key, &header(key)).unwrap();
        w.write_all(data).unwrap();
        let file = w.finish().unwrap();
        assert_eq!(file_len(&header(key), data.len() as u64).unwrap(), file.len() as u64);
        file
    }

    fn restore(key: &BackupKey, file: &[u8]) -> Result<Vec<u8>, String> {
        let (_, mut reader) = open(file, key).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn a_backup_opens_with_its_key_at_any_size() {
        let key = BackupKey::from_bytes([1; 32]);
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            assert_eq!(restore(&key, &backup(&key, &data)).unwrap(), data, "size {size}");
        }
        let mut file = backup(&key, b"x");
        let (h, _) = read_header(&mut file.as_slice()).unwrap();
        assert_eq!(h.open_kek(&key).unwrap(), (3, [42; 32]));
        assert_eq!(BackupKey::parse(&key.to_text()).unwrap().as_bytes(), key.as_bytes());
        file.truncate(5);
        assert!(restore(&key, &file).unwrap_err().contains("not a hapki backup"));
    }

    #[test]
    fn a_wrong_key_or_an_altered_cut_or_extended_file_is_refused() {
        let key = BackupKey::from_bytes([1; 32]);
        let data = vec![5u8; 2 * CHUNK + 10];
        let file = backup(&key, &data);
        let other = BackupKey::from_bytes([2; 32]);
        assert!(restore(&other, &file).unwrap_err().contains("does not open the backup"));

        // The header is bound to the chunks: a changed count is caught by the first chunk.
        let text = String::from_utf8_lossy(&file[13..200]).to_string();
        assert!(text.contains("\"rows\":5"));
        let at = file.windows(8).position(|w| w == b"\"rows\":5").unwrap() + 7;
        let mut altered = file.clone();
        altered[at] = b'6';
        assert!(restore(&key, &altered).unwrap_err().contains("chunk 0"));

        let mut flipped = file.clone();
        let n = flipped.len();
        flipped[n - 5] ^= 1;
        assert!(restore(&key, &flipped).unwrap_err().contains("chunk 2"));

        // Cut at a chunk boundary: the last chunk is missing.
        let first_two = file.len() - (10 + TAG + 4);
        assert!(restore(&key, &file[..first_two]).unwrap_err().contains("cut short"));
        assert!(restore(&key, &file[..file.len() - 1])
            .unwrap_err()
            .contains("cut short"));
        let mut longer = file.clone();
        longer.push(0);
        assert!(restore(&key, &longer).unwrap_err().contains("after its last chunk"));

        // Two chunks swapped.
        let start = file.len() - (2 * (CHUNK + TAG + 4) + 10 + TAG + 4);
        let c = CHUNK + TAG + 4;
        let mut swapped = file[..start].to_vec();
        swapped.extend_from_slice(&file[start + c..start + 2 * c]);
        swapped.extend_from_slice(&file[start..start + c]);
        swapped.extend_from_slice(&file[start + 2 * c..]);
        assert!(restore(&key, &swapped).unwrap_err().contains("chunk 0"));
        assert!(BackupKey::parse("hbk_short").is_err());
    }
}
