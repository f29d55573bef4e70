//! How hapki encodes what it keeps and sends: one format byte ([`FORMAT`]), then the
//! value in postcard (its wire format is written down at
//! <https://postcard.jamesmunns.com/wire-format>). Every record in the state-machine
//! tables, every Raft log entry and bookkeeping value, every sealed file and every
//! cluster-channel body goes through this one pair, so a value written by a later
//! layout is refused by name instead of misread.
//!
//! Postcard is not self-describing: a type it carries must not use serde attributes
//! that need to look ahead (`skip_serializing_if`, `flatten`, `untagged`, internally
//! tagged enums). The round-trip tests of each crate cover the types it encodes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// The layout of everything [`encode`] writes. Schema 2 wrote bincode 1 with no format
/// byte; [`crate::legacy`] reads that, to migrate it.
pub const FORMAT: u8 = 1;

/// The format byte, then `value` in postcard.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![FORMAT]).expect("postcard encodes every type hapki keeps")
}

/// How many bytes [`encode`] writes for `value`, without writing them.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let body = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .expect("postcard encodes every type hapki keeps");
    1 + body
}

/// Reads what [`encode`] wrote. A value of another format, a damaged one, or one with
/// bytes left over is an error, never a guess.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let (format, body) = bytes
        .split_first()
        .ok_or_else(|| StoreError::Corrupt("an empty value".into()))?;
    match *format {
        FORMAT => {}
        f if f > FORMAT => {
            return Err(StoreError::Format(format!(
                "a value of format {f} was written by a newer hapki; this build reads format {FORMAT}"
            )))
        }
        f => return Err(StoreError::Corrupt(format!("a value of unknown format {f}"))),
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(StoreError::Corrupt(format!("{} bytes after the value", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use hapki_domain::profile::builtin_profiles;
    use hapki_domain::revocation::RevocationReason;
    use hapki_domain::serial::Serial;

    use super::*;
    use crate::records::*;
    use crate::tests::{cert, issuer, sealed};
    use crate::{
        Approval, ArchiveSource, ArchivedKey, Command, CommandResult, RecoveryPolicy, RejectCode, TransportRecord,
    };

    fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        assert_eq!(&decode::<T>(&encode(value)).unwrap(), value);
    }

    /// One ACME request of every kind.
    fn acme_requests(cert: CertRecord) -> Vec<Command> {
        use crate::acme::*;
        let id = Identifier {
            kind: "dns".into(),
            value: "a.example".into(),
        };
        let ops = vec![
            AcmeOp::NewAccount {
                account: AcmeAccount {
                    id: "a".into(),
                    profile: "server".into(),
                    jwk: "{}".into(),
                    thumbprint: [1; 32],
                    contact: vec!["mailto:x@example.com".into()],
                    status: AccountStatus::Deactivated,
                    eab_kid: Some("k".into()),
                    created_at: 1,
                },
            },
            AcmeOp::UpdateAccount {
                contact: Some(vec![]),
                deactivate: true,
            },
            AcmeOp::KeyChange {
                jwk: "{}".into(),
                thumbprint: [2; 32],
            },
            AcmeOp::NewOrder {
                order: AcmeOrder {
                    id: "o".into(),
                    account: "a".into(),
                    profile: "server".into(),
                    identifiers: vec![id.clone()],
                    authorizations: vec!["z".into()],
                    created_at: 1,
                    expires_at: 2,
                    replaces: Some("r".into()),
                    certificate: Some(Serial::from_u64(3)),
                },
                authorizations: [
                    AuthzStatus::Pending,
                    AuthzStatus::Valid {
                        challenge: "http-01".into(),
                        at: 3,
                    },
                    AuthzStatus::Invalid {
                        challenge: "dns-01".into(),
                        at: 3,
                        error: "e".into(),
                    },
                    AuthzStatus::Deactivated,
                ]
                .into_iter()
                .map(|status| AcmeAuthz {
                    id: "z".into(),
                    account: "a".into(),
                    identifier: id.clone(),
                    wildcard: true,
                    token: "t".into(),
                    status,
                    expires_at: 4,
                })
                .collect(),
            },
            AcmeOp::Validated {
                authz: "z".into(),
                challenge: "http-01".into(),
                error: Some("e".into()),
            },
            AcmeOp::DeactivateAuthz { authz: "z".into() },
            AcmeOp::Finalize {
                order: "o".into(),
                cert,
            },
            AcmeOp::Revoke {
                serial: Serial::from_u64(3),
                reason: RevocationReason::Superseded,
            },
            AcmeOp::RevokeByCertKey {
                serial: Serial::from_u64(4),
                reason: RevocationReason::KeyCompromise,
            },
        ];
        ops.into_iter()
            .map(|op| Command::Acme {
                request: AcmeRequest {
                    nonce: [7; 24],
                    at: 5,
                    account: "a".into(),
                    op,
                },
            })
            .collect()
    }

    /// One of every command, with every optional part present, as the Raft log carries them.
    fn every_command() -> Vec<Command> {
        let archived = ArchivedKey {
            serial: Serial::from_u64(9),
            wrapped_key: sealed(0, 8),
            archived_at: 3,
            archived_by: "t1".into(),
            archived_by_name: "alice".into(),
            source: ArchiveSource::Generated,
        };
        let mut full = issuer("aa");
        full.ocsp = Some(OcspSignerRecord {
            cert_der: vec![0x30, 1],
            wrapped_key: sealed(0, 4),
        });
        full.chain_der = vec![vec![0x30, 2], vec![0x30, 3]];
        let mut revoked = cert(7, "aa");
        revoked.revoked = Some(Revocation {
            at: 9,
            reason: RevocationReason::AaCompromise,
        });
        revoked.requested_by = Some("0123456789abcdef".into());
        let token = TokenRecord {
            id: "0123456789abcdef".into(),
            hash: [7; 32],
            role: Role::Requester,
            name: "ci".into(),
            created_at: 1,
            expires_at: Some(2),
            revoked: false,
            profiles: vec!["server".into()],
            issuers: vec!["aa".into()],
        };
        let settings = Settings {
            serial_mode: SerialMode::Sequential,
            ..Settings::default()
        };
        let node = NodeRecord {
            id: u64::MAX,
            name: "n1".into(),
            standing: NodeStanding::Admitted,
            admitted_at: 3,
            removed_at: None,
            channel_key: Some([9; 32]),
        };
        vec![
            Command::Bootstrap {
                cluster_id: "c1".into(),
                profiles: builtin_profiles(),
                settings: settings.clone(),
            },
            Command::AddIssuer {
                issuer: full.clone(),
                make_default: true,
            },
            Command::InstallIssuerCert {
                id: "aa".into(),
                cert_der: vec![0x30, 0],
                chain_der: vec![vec![0x30, 5]],
                not_after: 10,
                ocsp: full.ocsp.clone(),
            },
            Command::SetInternalCa {
                ca: InternalCaRecord {
                    cert_der: vec![0x30, 6],
                    wrapped_key: sealed(0, 5),
                },
            },
            Command::SetOcspSigner {
                issuer_id: "aa".into(),
                signer: full.ocsp.clone().expect("set above"),
            },
            Command::SetDefaultIssuer { id: "aa".into() },
            Command::PutProfile {
                profile: builtin_profiles().pop().expect("built-in profiles"),
                create: false,
            },
            Command::IssueCert {
                cert: revoked,
                idempotency_key: Some([1; 32]),
            },
            Command::Revoke {
                serial: Serial::from_u64(7),
                reason: RevocationReason::KeyCompromise,
                at: 11,
                idempotency_key: Some([2; 32]),
            },
            Command::PublishCrl {
                crl: CrlRecord {
                    issuer_id: "aa".into(),
                    number: 2,
                    this_update: 3,
                    next_update: 4,
                    entries: 1,
                    der: vec![0x30, 7],
                },
            },
            Command::CreateToken { token },
            Command::RevokeToken { id: "0123".into() },
            Command::PutSettings { settings },
            Command::AdmitNode { node },
            Command::RemoveNode { id: 5, at: 6 },
            Command::LeaseSerials { node: 5, size: 1000 },
            Command::RotateKek {
                from: 0,
                to: 1,
                issuers: vec![RewrappedIssuer {
                    id: "aa".into(),
                    key: sealed(1, 1),
                    ocsp: Some(sealed(1, 2)),
                }],
                internal_ca: Some(sealed(1, 3)),
            },
            Command::RotateKekWithArchive {
                from: 0,
                to: 1,
                issuers: Vec::new(),
                internal_ca: None,
                archived: vec![(Serial::from_u64(9), sealed(1, 4))],
                transport: Some(sealed(1, 5)),
            },
            Command::SetArchiveTransport {
                transport: TransportRecord {
                    cert_der: vec![0x30, 0],
                    wrapped_key: sealed(0, 6),
                },
            },
            Command::ArchiveKey { key: archived.clone() },
            Command::IssueAndArchive {
                cert: cert(9, "aa"),
                idempotency_key: Some([7; 32]),
                key: archived,
            },
            Command::SetRecoveryPolicy {
                policy: RecoveryPolicy::default(),
            },
            Command::RequestRecovery {
                id: "00112233aabbccdd".into(),
                serial: Serial::from_u64(9),
                reason: "lost".into(),
                by: "t1".into(),
                by_name: "alice".into(),
                at: 5,
            },
            Command::ApproveRecovery {
                id: "00112233aabbccdd".into(),
                approval: Approval {
                    token_id: "t2".into(),
                    token_name: "bob".into(),
                    at: 6,
                },
            },
            Command::FetchRecovery {
                id: "00112233aabbccdd".into(),
                by: "t1".into(),
                at: 7,
            },
            Command::RecordBackup {
                backup: crate::BackupRecord {
                    id: "b1".into(),
                    index: 9,
                    digest: "d".into(),
                    taken_at: 8,
                    size: 10,
                    sha256: "s".into(),
                    rows: 3,
                    certificates: 1,
                    taken_by: None,
                    taken_by_name: "schedule".into(),
                    node: 1,
                    file: Some("hapki-backup.hbk".into()),
                    recipient: Some("r".into()),
                },
            },
            Command::Audited {
                meta: audit_meta(),
                command: Box::new(Command::RevokeToken { id: "0123".into() }),
            },
            Command::AuditEvent {
                meta: audit_meta(),
                action: "export_ca".into(),
                object: "issuer aa".into(),
            },
            Command::SealAudit {
                seal: hapki_domain::audit::Seal {
                    seq: 3,
                    hash: "ab".into(),
                    at: 4,
                    signature: "c2ln".into(),
                },
            },
            Command::SetAuditKey {
                key: crate::AuditKeyRecord {
                    cert_der: vec![0x30, 0],
                    wrapped_key: sealed(0, 8),
                },
            },
            Command::RotateKekWithAudit {
                rotation: Box::new(Command::RotateKek {
                    from: 0,
                    to: 1,
                    issuers: Vec::new(),
                    internal_ca: None,
                }),
                audit: sealed(1, 9),
            },
            Command::SetStateFormat { to: 2 },
            Command::CompleteRollover { from: "aa".into() },
            Command::PublishCrlHead {
                head: crate::CrlHead {
                    issuer_id: "aa".into(),
                    number: 3,
                    this_update: 5,
                    next_update: 6,
                },
            },
            Command::TidyExpired {
                tidy: crate::tidy::Tidy {
                    at: 7,
                    expired_before: 6,
                    serials: vec![Serial::from_u64(1), Serial::from_u64(2)],
                    crl_heads: vec![crate::CrlHead {
                        issuer_id: "aa".into(),
                        number: 4,
                        this_update: 7,
                        next_update: 8,
                    }],
                },
            },
            Command::SetTidyPolicy {
                policy: crate::tidy::TidyPolicy::default(),
            },
            Command::SetCrlPolicy {
                policy: crate::crl_delta::CrlPolicy { delta_secs: 5 },
            },
            Command::SetCrlPartitioning {
                policy: crate::crl_partition::CrlPartitioning { size: 50_000 },
            },
            Command::ForgetIdempotencyKeys { at: 9, max: 100 },
            Command::PublishDeltaHead {
                head: crate::crl_delta::DeltaHead {
                    issuer_id: "aa".into(),
                    number: 5,
                    base: 4,
                    this_update: 7,
                    next_update: 8,
                },
            },
            Command::SetAcmeSecret {
                secret: crate::acme::AcmeSecret {
                    wrapped: sealed(0, 5),
                    created_at: 1,
                },
            },
            Command::SetAcmeDirectory {
                profile: "server".into(),
                directory: crate::acme::AcmeDirectory { require_eab: true },
            },
            Command::CreateEab {
                eab: crate::acme::EabRecord {
                    kid: "k".into(),
                    profile: "server".into(),
                    created_at: 1,
                    created_by: "t".into(),
                    expires_at: 2,
                    bound_to: Some("a".into()),
                },
            },
            Command::SuggestRenewal {
                issuer: "aa".into(),
                hint: crate::acme::RenewalHint {
                    before: 9,
                    set_at: 1,
                    set_by: "t".into(),
                },
            },
            Command::RotateKekWithAcme {
                rotation: Box::new(Command::RotateKek {
                    from: 0,
                    to: 1,
                    issuers: vec![],
                    internal_ca: None,
                }),
                acme: sealed(1, 6),
            },
        ]
        .into_iter()
        .chain(acme_requests(cert(8, "aa")))
        .collect()
    }

    fn audit_meta() -> crate::AuditMeta {
        crate::AuditMeta {
            at: 5,
            actor: Some("t1".into()),
            actor_name: "alice".into(),
            node: 1,
        }
    }

    #[test]
    fn every_command_and_record_round_trips() {
        let commands = every_command();
        let kinds: BTreeSet<&str> = commands.iter().map(Command::kind).collect();
        // The three rotations are `rotate_kek`, both CRL publications `publish_crl`; an
        // audited command is its command's kind.
        assert_eq!(kinds.len(), 49, "one of each command: {kinds:?}");
        for command in &commands {
            round_trips(command);
        }
        for result in [
            CommandResult::Applied,
            CommandResult::Replayed {
                serial: Serial::from_u64(3),
            },
            CommandResult::Rejected {
                code: RejectCode::Conflict,
                message: "no".into(),
            },
        ] {
            round_trips(&result);
        }
        round_trips(&SerialLease { start: 1, end: 1001 });
        round_trips(&crate::crl_delta::DeltaState {
            base: 4,
            latest: Some(crate::crl_delta::DeltaHead {
                issuer_id: "aa".into(),
                number: 5,
                base: 4,
                this_update: 1,
                next_update: 2,
            }),
        });
        round_trips(&crate::tidy::TidyRecord {
            at: 1,
            expired_before: 2,
            removed: 3,
            revoked: 1,
            total_removed: 9,
        });
        round_trips(&NodeRecord {
            id: 1,
            name: String::new(),
            standing: NodeStanding::Removed,
            admitted_at: 0,
            removed_at: Some(1),
            channel_key: None,
        });
    }

    #[test]
    fn a_value_is_its_format_byte_then_postcard() {
        let bytes = encode(&(300u32, "ab".to_string(), Some(true)));
        // 300 is the varint ac 02; a string is its length then its bytes; Some is 01.
        assert_eq!(bytes, [FORMAT, 0xac, 0x02, 2, b'a', b'b', 1, 1]);
        assert_eq!(
            decode::<(u32, String, Option<bool>)>(&bytes).unwrap(),
            (300, "ab".into(), Some(true))
        );
    }

    #[test]
    fn another_format_or_leftover_bytes_are_refused() {
        let mut newer = encode(&7u64);
        newer[0] = FORMAT + 1;
        let err = decode::<u64>(&newer).unwrap_err();
        assert!(
            matches!(&err, StoreError::Format(m) if m.contains("newer hapki")),
            "{err}"
        );
        assert!(matches!(decode::<u64>(&[0, 7]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode::<u64>(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode::<u64>(&[FORMAT, 7, 7]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode::<String>(&[FORMAT, 5, b'a']),
            Err(StoreError::Corrupt(_))
        ));
    }
}
