//! Replay nonces any node hands out and any node accepts: the time, the node and eight
//! random bytes, with a MAC under a key every node derives from the replicated ACME
//! secret. Checking one needs no write and no other node; a state-changing request
//! redeems its nonce in the log entry of its change (`hapki_store::acme`), and a
//! POST-as-GET redeems it in this node's memory.

use std::collections::BTreeSet;
use std::sync::Mutex;

use aws_lc_rs::hmac;
use hapki_domain::jws::{b64, b64_encode};
use hapki_store::acme::{nonce_time, NONCE_WINDOW_SECS};

use super::error::{AcmeError, Kind};

const TAG_BYTES: usize = 16;

fn tag(key: &hmac::Key, body: &[u8; 24]) -> [u8; TAG_BYTES] {
    hmac::sign(key, body).as_ref()[..TAG_BYTES]
        .try_into()
        .expect("HMAC-SHA256 is longer")
}

/// A new nonce made at `now` by `node`.
pub fn make(key: &hmac::Key, now: u64, node: u64, random: [u8; 8]) -> String {
    let mut body = [0u8; 24];
    body[..8].copy_from_slice(&now.to_be_bytes());
    body[8..16].copy_from_slice(&node.to_be_bytes());
    body[16..].copy_from_slice(&random);
    b64_encode(&[&body[..], &tag(key, &body)].concat())
}

fn bad(detail: &str) -> AcmeError {
    AcmeError::new(
        Kind::BadNonce,
        format!("{detail}; get a new nonce (HEAD newNonce) and retry"),
    )
}

/// The body of `nonce` if this cluster made it within the window around `now`.
pub fn check(key: &hmac::Key, nonce: Option<&str>, now: u64) -> Result<[u8; 24], AcmeError> {
    let nonce = nonce.ok_or_else(|| bad("the protected header has no nonce"))?;
    let raw = b64("the nonce", nonce).map_err(|_| bad("the nonce is not one this server made"))?;
    if raw.len() != 24 + TAG_BYTES {
        return Err(bad("the nonce is not one this server made"));
    }
    let body: [u8; 24] = raw[..24].try_into().expect("checked length");
    if aws_lc_rs::constant_time::verify_slices_are_equal(&tag(key, &body), &raw[24..]).is_err() {
        return Err(bad("the nonce is not one this server made"));
    }
    let issued = nonce_time(&body);
    if issued.saturating_add(NONCE_WINDOW_SECS) < now || issued > now.saturating_add(NONCE_WINDOW_SECS) {
        return Err(bad("the nonce has expired"));
    }
    Ok(body)
}

/// Nonces this node accepted for requests that change nothing, within their window.
#[derive(Default)]
pub struct LocalRedeemed(Mutex<BTreeSet<[u8; 24]>>);

impl LocalRedeemed {
    /// Redeems `body` at `now`; false if it was redeemed here before.
    pub fn redeem(&self, body: [u8; 24], now: u64) -> bool {
        let mut set = self.0.lock().expect("nonce lock");
        // Bodies sort by time first: everything before the horizon is out of its window.
        let mut horizon = [0u8; 24];
        horizon[..8].copy_from_slice(&now.saturating_sub(NONCE_WINDOW_SECS).to_be_bytes());
        *set = set.split_off(&horizon);
        set.insert(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[b; 32])
    }

    #[test]
    fn a_nonce_checks_under_its_key_within_its_window_only() {
        let n = make(&key(1), 1_000, 7, [3; 8]);
        let body = check(&key(1), Some(&n), 1_100).unwrap();
        assert_eq!(nonce_time(&body), 1_000);
        for (k, at) in [(key(2), 1_100), (key(1), 1_000 + NONCE_WINDOW_SECS + 1)] {
            assert_eq!(check(&k, Some(&n), at).unwrap_err().kind, Kind::BadNonce);
        }
        let mut tampered = n.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [None, Some("short"), Some("!!!"), Some(tampered.as_str())] {
            assert_eq!(check(&key(1), bad, 1_100).unwrap_err().kind, Kind::BadNonce, "{bad:?}");
        }
    }

    #[test]
    fn a_nonce_is_redeemed_once_here_and_forgotten_after_its_window() {
        let seen = LocalRedeemed::default();
        let body = check(&key(1), Some(&make(&key(1), 1_000, 7, [3; 8])), 1_000).unwrap();
        assert!(seen.redeem(body, 1_000));
        assert!(!seen.redeem(body, 1_001));
        seen.redeem(
            check(&key(1), Some(&make(&key(1), 5_000, 7, [4; 8])), 5_000).unwrap(),
            5_000,
        );
        assert_eq!(seen.0.lock().unwrap().len(), 1);
    }
}
