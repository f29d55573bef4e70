//! Randomness from the operating system's CSPRNG (through aws-lc-rs), in the
//! shapes hapki needs: serial bytes, nonces, ids and token secrets.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Fills `out` with random bytes.
pub fn fill(out: &mut [u8]) {
    SystemRandom::new().fill(out).expect("the system CSPRNG does not fail");
}

/// A random 64-bit id that is never zero.
pub fn id64() -> u64 {
    loop {
        let v = u64::from_be_bytes(bytes::<8>());
        if v != 0 {
            return v;
        }
    }
}
