//! The PKCS#11 root of trust: an AES-256 key on a token, found by its label and
//! made there on first use as sensitive and not extractable (`CKM_AES_KEY_GEN`).
//! The node never sees it: the token seals with `CKM_AES_GCM`, with the same
//! associated data as [`hapki_domain::wrap`], so a sealed value has the same
//! shape whatever root made it.
//!
//! Each operation opens its own session and logs in with the PIN read from
//! `pin_file` at that moment, so a token that comes back or a corrected PIN
//! file works without a restart. A PIN the token refused is not presented
//! again until the file changes: tokens lock after a few wrong tries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use hapki_api::node::RootOfTrustSpec;
use hapki_domain::wrap::{self, Wrapped};

use super::root::RootOfTrust;
use super::TrustError;
use crate::rand;

pub struct Pkcs11Root {
    spec: RootOfTrustSpec,
    /// SHA-256 of the last PIN the token refused.
    refused_pin: Mutex<Option<[u8; 32]>>,
}

/// The modules this process has loaded and initialised, by path: PKCS#11 allows one
/// initialisation per module per process.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

fn ck(what: &str) -> impl FnOnce(CkError) -> TrustError + '_ {
    move |e| TrustError::Unavailable(format!("PKCS#11 {what}: {}", describe(&e)))
}

fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{function:?} answered {rv:?}"),
        other => other.to_string(),
    }
}

impl Pkcs11Root {
    pub fn new(spec: RootOfTrustSpec) -> Self {
        Pkcs11Root {
            spec,
            refused_pin: Mutex::new(None),
        }
    }

    fn parts(&self) -> (&PathBuf, &str, &PathBuf, &str) {
        match &self.spec {
            RootOfTrustSpec::Pkcs11 {
                module,
                token_label,
                pin_file,
                key_label,
            } => (module, token_label, pin_file, key_label),
            RootOfTrustSpec::File { .. } => unreachable!("a PKCS#11 root is made from a PKCS#11 spec"),
        }
    }

    fn module(&self) -> Result<Pkcs11, TrustError> {
        let (path, ..) = self.parts();
        let mut loaded = modules().lock().expect("modules lock");
        if let Some(m) = loaded.get(path) {
            return Ok(m.clone());
        }
        let m = Pkcs11::new(path).map_err(|e| {
            TrustError::Unavailable(format!(
                "cannot load the PKCS#11 module {}: {}",
                path.display(),
                describe(&e)
            ))
        })?;
        m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(ck("initialise"))?;
        loaded.insert(path.clone(), m.clone());
        Ok(m)
    }

    /// A logged-in session on the token with the configured label.
    fn session(&self) -> Result<Session, TrustError> {
        let (module_path, token_label, pin_file, _) = self.parts();
        let module = self.module()?;
        let mut slot = None;
        for s in module.get_slots_with_token().map_err(ck("list slots"))? {
            if module.get_token_info(s).is_ok_and(|t| t.label() == token_label) {
                slot = Some(s);
                break;
            }
        }
        let Some(slot) = slot else {
            // A token inserted later appears only to a module initialised again.
            modules().lock().expect("modules lock").remove(module_path);
            return Err(TrustError::Unavailable(format!(
                "no token labelled '{token_label}' is present in {}",
                module_path.display()
            )));
        };
        let pin = read_pin(pin_file)?;
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        if *self.refused_pin.lock().expect("pin lock") == Some(digest) {
            return Err(TrustError::Unavailable(format!(
                "the token '{token_label}' refused the PIN in {}; put the right one there (it is not tried again until the file changes)",
                pin_file.display()
            )));
        }
        let session = module.open_rw_session(slot).map_err(ck("open a session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                *self.refused_pin.lock().expect("pin lock") = Some(digest);
                return Err(TrustError::Unavailable(format!(
                    "the token '{token_label}' refused the PIN in {}; put the right one there",
                    pin_file.display()
                )));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(TrustError::Unavailable(format!(
                    "the token '{token_label}' has locked its user PIN: unlock it with the security officer's PIN"
                )))
            }
            Err(e) => return Err(ck("log in")(e)),
        }
        *self.refused_pin.lock().expect("pin lock") = None;
        Ok(session)
    }

    fn find_key(&self, session: &Session) -> Result<Option<ObjectHandle>, TrustError> {
        let (.., key_label) = self.parts();
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(key_label.as_bytes().to_vec()),
            ])
            .map_err(ck("find the wrapping key"))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(TrustError::Invalid(format!(
                "the token holds {} AES keys labelled '{key_label}': keep one",
                found.len()
            ))),
        }
    }

    fn make_key(&self, session: &Session) -> Result<ObjectHandle, TrustError> {
        let (_, token_label, _, key_label) = self.parts();
        let key = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Modifiable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Label(key_label.as_bytes().to_vec()),
                ],
            )
            .map_err(ck("make the wrapping key"))?;
        // What the token says, not what was asked for.
        let attrs = session
            .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(ck("read the wrapping key's attributes"))?;
        let sensitive = attrs.iter().any(|a| matches!(a, Attribute::Sensitive(true)));
        let extractable = attrs.iter().any(|a| matches!(a, Attribute::Extractable(true)));
        if !sensitive || extractable {
            let _ = session.destroy_object(key);
            return Err(TrustError::Invalid(format!(
                "the token '{token_label}' made the wrapping key without keeping it sensitive and not extractable"
            )));
        }
        tracing::info!("made the AES-256 wrapping key '{key_label}' on the token '{token_label}'");
        Ok(key)
    }
}

/// The PIN: the first line of its file.
fn read_pin(path: &PathBuf) -> Result<String, TrustError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TrustError::Unavailable(format!("cannot read the PIN file {}: {e}", path.display())))?;
    let pin = text.lines().next().unwrap_or("").trim_end_matches('\r').to_string();
    if pin.is_empty() {
        return Err(TrustError::Unavailable(format!(
            "the PIN file {} is empty",
            path.display()
        )));
    }
    Ok(pin)
}

impl RootOfTrust for Pkcs11Root {
    fn spec(&self) -> &RootOfTrustSpec {
        &self.spec
    }

    fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Wrapped, TrustError> {
        let session = self.session()?;
        let key = match self.find_key(&session)? {
            Some(k) => k,
            None => self.make_key(&session)?,
        };
        let nonce = rand::bytes::<12>();
        let mut iv = nonce;
        let aad = wrap::associated_data(context);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(ck("GCM parameters"))?;
        let ciphertext = session
            .encrypt(&Mechanism::AesGcm(params), key, plaintext)
            .map_err(ck("encrypt"))?;
        Ok(Wrapped {
            version: 1,
            kek: 0,
            nonce,
            ciphertext,
        })
    }

    fn open(&self, context: &str, wrapped: &Wrapped) -> Result<Vec<u8>, TrustError> {
        let (_, token_label, _, key_label) = self.parts();
        let session = self.session()?;
        let key = self.find_key(&session)?.ok_or_else(|| {
            TrustError::Unavailable(format!("the token '{token_label}' holds no key labelled '{key_label}'"))
        })?;
        let mut iv = wrapped.nonce;
        let aad = wrap::associated_data(context);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(ck("GCM parameters"))?;
        session
            .decrypt(&Mechanism::AesGcm(params), key, &wrapped.ciphertext)
            .map_err(|e| match e {
                // A tag that does not verify; SoftHSM answers it with CKR_GENERAL_ERROR.
                CkError::Pkcs11(
                    RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
                    _,
                ) => {
                    TrustError::Invalid(format!(
                        "'{context}' cannot be opened with the key '{key_label}' on '{token_label}': it was sealed under another key, or altered"
                    ))
                }
                e => ck("decrypt")(e),
            })
    }

    fn retire(&self) -> Result<Option<PathBuf>, TrustError> {
        // The token's key may seal other things; the token's owner removes it.
        Ok(None)
    }
}

#[cfg(test)]
#[path = "../../../../tests/common/softhsm.rs"]
pub(crate) mod softhsm;

/// The tokens this crate's tests use, made once per test process before any loads the module.
#[cfg(test)]
pub(crate) fn test_root(token: &str, key_label: &str, pin_file: PathBuf) -> RootOfTrustSpec {
    static TOKENS: OnceLock<()> = OnceLock::new();
    TOKENS.get_or_init(|| {
        for label in ["seal", "pin", "migrate"] {
            softhsm::init_token(label);
        }
    });
    RootOfTrustSpec::Pkcs11 {
        module: softhsm::module(),
        token_label: token.into(),
        pin_file,
        key_label: key_label.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(token: &str, key_label: &str, pin_file: PathBuf) -> Pkcs11Root {
        Pkcs11Root::new(test_root(token, key_label, pin_file))
    }

    #[test]
    fn the_token_makes_a_sensitive_key_and_seals_with_it() {
        let r = root("seal", "k", softhsm::pin_file("pin", softhsm::USER_PIN));
        let sealed = r.seal("cluster-kek:0", b"a 32-byte key-encryption key...").unwrap();
        assert_ne!(sealed.ciphertext, b"a 32-byte key-encryption key...");
        assert_eq!(
            r.open("cluster-kek:0", &sealed).unwrap(),
            b"a 32-byte key-encryption key..."
        );
        // The context is bound: the same value under another slot does not open.
        let wrong = r.open("cluster-kek:1", &sealed);
        assert!(matches!(wrong, Err(TrustError::Invalid(_))), "{wrong:?}");
        // What the token holds: one key, sensitive, never extractable, not even by hapki.
        let session = r.session().unwrap();
        let key = r.find_key(&session).unwrap().expect("the key is on the token");
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Token,
                ],
            )
            .unwrap();
        let has = |f: fn(&Attribute) -> bool| attrs.iter().any(f);
        assert!(has(|a| matches!(a, Attribute::Sensitive(true))), "{attrs:?}");
        assert!(has(|a| matches!(a, Attribute::Extractable(false))), "{attrs:?}");
        assert!(has(|a| matches!(a, Attribute::NeverExtractable(true))), "{attrs:?}");
        assert!(has(|a| matches!(a, Attribute::Token(true))), "{attrs:?}");
        let value = session.get_attributes(key, &[AttributeType::Value]);
        assert!(
            value.is_ok_and(|v| !v.iter().any(|a| matches!(a, Attribute::Value(_)))),
            "the key's value cannot be read"
        );
        // A second seal finds the same key instead of making another.
        let again = r.seal("cluster-kek:0", b"x").unwrap();
        assert_eq!(r.open("cluster-kek:0", &again).unwrap(), b"x");
        drop(session);
        // Another root on the same token, with another key label, cannot open it.
        let other = root("seal", "another", softhsm::pin_file("pin", softhsm::USER_PIN));
        other.seal("warm-up", b"makes its own key").unwrap();
        assert!(matches!(
            other.open("cluster-kek:0", &sealed),
            Err(TrustError::Invalid(_))
        ));
    }

    #[test]
    fn a_refused_pin_is_not_presented_again_until_its_file_changes() {
        let pin_file = softhsm::pin_file("pin-of-pin-test", "9999");
        let r = root("pin", "k", pin_file.clone());
        let first = r.seal("x", b"y").unwrap_err().to_string();
        assert!(first.contains("refused the PIN"), "{first}");
        let second = r.seal("x", b"y").unwrap_err().to_string();
        assert!(second.contains("not tried again"), "{second}");
        std::fs::write(&pin_file, format!("{}\n", softhsm::USER_PIN)).unwrap();
        let sealed = r.seal("x", b"y").unwrap();
        assert_eq!(r.open("x", &sealed).unwrap(), b"y");
        // A missing PIN file or token is a root that cannot be reached now, not a bad one.
        std::fs::remove_file(&pin_file).unwrap();
        assert!(matches!(r.open("x", &sealed), Err(TrustError::Unavailable(_))));
        let absent = root("no-such-token", "k", softhsm::pin_file("pin", softhsm::USER_PIN));
        let err = absent.open("x", &sealed).unwrap_err();
        assert!(
            matches!(&err, TrustError::Unavailable(m) if m.contains("no token labelled")),
            "{err}"
        );
    }
}
