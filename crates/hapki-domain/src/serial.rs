//! Certificate serial numbers: positive, at most 20 octets (RFC 5280 §4.1.2.2),
//! with at least 64 bits of CSPRNG output (CA/Browser Forum BR 7.1). The random
//! bytes are passed in; this module only shapes them.

use std::fmt;

use serde::{Deserialize, Serialize};
use x509_cert::serial_number::SerialNumber;

use crate::DomainError;

/// A serial number as a fixed-width, big-endian, left-zero-padded 20-byte value,
/// so that byte order equals numeric order in the store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Serial(pub [u8; 20]);

/// Random bytes that go into a serial: 16 bytes give 126 bits of entropy.
pub const RANDOM_SERIAL_BYTES: usize = 16;

impl Serial {
    /// Shapes 16 CSPRNG bytes into a positive 16-octet serial: the top bit is
    /// cleared (positive) and the next one set (always exactly 16 octets).
    pub fn from_random(mut bytes: [u8; RANDOM_SERIAL_BYTES]) -> Serial {
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        let mut out = [0u8; 20];
        out[20 - RANDOM_SERIAL_BYTES..].copy_from_slice(&bytes);
        Serial(out)
    }

    /// A random serial that sorts by the second it was drawn in: the same 16 octets as
    /// [`Serial::from_random`], whose 126 bits after the leading `01` are 38 bits of `secs`
    /// (seconds since 1970, enough until the year 10,680) and then 88 bits of `bytes`. Stores
    /// keep certificates in serial order, so each new one lands next to the last instead of
    /// at a random place in a table larger than memory. 88 CSPRNG bits are more than the
    /// CA/Browser Forum's 64.
    pub fn from_time_and_random(secs: u64, bytes: [u8; RANDOM_SERIAL_BYTES]) -> Serial {
        let mut out = Serial::from_random(bytes);
        let time = (secs & ((1 << 38) - 1)).to_be_bytes();
        let first = 20 - RANDOM_SERIAL_BYTES;
        out.0[first] = 0x40 | time[3];
        out.0[first + 1..first + 5].copy_from_slice(&time[4..]);
        out
    }

    /// A serial from a counter, for sequential mode.
    pub fn from_u64(n: u64) -> Serial {
        let mut out = [0u8; 20];
        out[12..].copy_from_slice(&n.to_be_bytes());
        Serial(out)
    }

    /// The significant bytes, without leading zeros.
    pub fn significant(&self) -> &[u8] {
        let first = self.0.iter().position(|b| *b != 0).unwrap_or(19);
        &self.0[first..]
    }

    /// Lowercase hex of the significant bytes, the form users see and type.
    pub fn to_hex(&self) -> String {
        hex::encode(self.significant())
    }

    /// Parses hex, with or without colons, in either case.
    pub fn from_hex(s: &str) -> Result<Serial, DomainError> {
        let clean: String = s.trim().chars().filter(|c| *c != ':').collect();
        let clean = clean.strip_prefix("0x").unwrap_or(&clean);
        let padded = if clean.len() % 2 == 1 {
            format!("0{clean}")
        } else {
            clean.to_string()
        };
        let bytes =
            hex::decode(&padded).map_err(|_| DomainError::invalid(format!("serial '{s}' is not hexadecimal")))?;
        Self::from_bytes(&bytes)
            .ok_or_else(|| DomainError::invalid(format!("serial '{s}' is empty or longer than 20 octets")))
    }

    /// From big-endian bytes as they appear in a certificate (leading zeros allowed).
    pub fn from_bytes(bytes: &[u8]) -> Option<Serial> {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let sig = &bytes[first..];
        if sig.len() > 20 || bytes.is_empty() {
            return None;
        }
        let mut out = [0u8; 20];
        out[20 - sig.len()..].copy_from_slice(sig);
        Some(Serial(out))
    }

    /// Reads a certificate's serial number field.
    pub fn from_x509(sn: &SerialNumber) -> Option<Serial> {
        Self::from_bytes(sn.as_bytes())
    }

    /// The serial as the certificate field.
    pub fn to_x509(&self) -> SerialNumber {
        SerialNumber::new(self.significant()).expect("at most 20 positive octets")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn random_serials_are_positive_sixteen_octets_and_round_trip() {
        for bytes in [[0u8; 16], [0xff; 16], [0x80; 16]] {
            let s = Serial::from_random(bytes);
            assert_eq!(s.significant().len(), 16);
            assert!(s.significant()[0] & 0x80 == 0, "positive");
            assert_eq!(Serial::from_hex(&s.to_hex()).unwrap(), s);
            assert_eq!(Serial::from_x509(&s.to_x509()).unwrap(), s);
            // DER INTEGER: tag, length, content; no sign padding needed.
            assert_eq!(s.to_x509().to_der().unwrap().len(), 18);
        }
    }

    #[test]
    fn timed_serials_are_random_serials_that_sort_by_their_second() {
        let at = 1_796_000_000; // December 2026
        for bytes in [[0u8; 16], [0xff; 16], [0x80; 16]] {
            let s = Serial::from_time_and_random(at, bytes);
            assert_eq!(s.significant().len(), 16);
            assert_eq!(s.significant()[0] & 0xc0, 0x40, "positive, always 16 octets");
            assert_eq!(&s.significant()[5..], &bytes[5..], "88 random bits kept");
            assert_eq!(Serial::from_x509(&s.to_x509()).unwrap(), s);
        }
        // A later second sorts after, whatever the random bits; within a second the random
        // bits decide.
        let (early, late) = (
            Serial::from_time_and_random(at, [0xff; 16]),
            Serial::from_time_and_random(at + 1, [0; 16]),
        );
        assert!(early.0 < late.0);
        let mut low = [0u8; 16];
        low[15] = 1;
        assert!(Serial::from_time_and_random(at, low).0 < Serial::from_time_and_random(at, [0x7f; 16]).0);
        // The seconds fill the 38 bits after the leading 01.
        let s = Serial::from_time_and_random((1 << 38) - 1, [0; 16]);
        assert_eq!(&s.significant()[..5], &[0x7f, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn hex_forms_are_accepted_and_junk_is_refused() {
        let s = Serial::from_hex("0A:bc:01").unwrap();
        assert_eq!(s.to_hex(), "0abc01");
        assert_eq!(Serial::from_hex("abc01").unwrap(), s);
        assert!(Serial::from_hex("xyz").is_err());
        assert!(Serial::from_hex(&"ff".repeat(21)).is_err());
        assert!(Serial::from_hex("").is_err());
    }
}
