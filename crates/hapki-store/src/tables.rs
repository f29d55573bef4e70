//! Every redb table hapki uses, in one place. Serial keys are 20-byte big-endian
//! values, log keys are u64 indices, so byte order is numeric order.
//!
//! Tables named `SM_*` hold the replicated state machine and are what a snapshot
//! carries and the state digest covers. `RAFT_*` tables are the node's own Raft
//! log, vote and applied-state bookkeeping. `IDX_*` tables are indexes derived from the
//! state-machine tables: no snapshot carries them and no digest covers them.

use redb::TableDefinition;

/// Version of the layout below and of the values' encoding; bumped when either changes,
/// with a migration. Version 2: tokens carry profile and issuer limits, certificates the
/// token that asked for them, node records the key each node presents on the cluster
/// channel. Version 3: every value is a format byte and postcard ([`crate::codec`]), not
/// bincode 1; a node migrates a store of version 2 when it opens it ([`crate::Upgrade`]).
pub const SCHEMA_VERSION: u32 = 3;

/// Replicated settings and counters: `schema_version`, `cluster_id`, `default_issuer`, `settings`,
/// `state_format`.
pub const SM_META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_meta");
/// Issuer id → [`crate::IssuerRecord`].
pub const SM_ISSUERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_issuers");
/// Serial (20 bytes) → [`crate::CertRecord`].
pub const SM_CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_certs");
/// Issuer id ‖ `/` ‖ serial → [`crate::Revocation`]; what a CRL is built from.
pub const SM_REVOKED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_revoked");
/// Profile name → JSON [`hapki_domain::profile::Profile`].
pub const SM_PROFILES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_profiles");
/// SHA-256 of a token → [`crate::TokenRecord`].
pub const SM_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_tokens");
/// SHA-256 of a client's idempotency key → serial (20 bytes) of the certificate it issued
/// or revoked, as written before state format 6 ([`crate::idempotency`]).
pub const SM_IDEMPOTENCY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_idempotency");
/// Day (Unix seconds ÷ 86,400, u32 big-endian) ‖ SHA-256 of a client's idempotency key →
/// serial (20 bytes) of the certificate it issued or revoked that day (format 6).
pub const SM_IDEMPOTENCY_DAYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_idempotency_days");
/// Issuer id → latest [`crate::CrlRecord`].
pub const SM_CRLS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_crls");
/// Node id (8 bytes, big-endian) → [`crate::NodeRecord`]: nodes admitted to join, and removed ones.
pub const SM_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_nodes");

/// Serial (20 bytes) → [`crate::ArchivedKey`]: private keys kept for recovery, sealed.
pub const SM_ARCHIVE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_archive");
/// Request id (16 hex digits) → [`crate::RecoveryRequest`].
pub const SM_RECOVERIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_recoveries");

/// Backup id → [`crate::backups::BackupRecord`].
pub const SM_BACKUPS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_backups");

/// Position (8 bytes, big-endian) → [`hapki_domain::audit::Record`]: the audit log.
pub const SM_AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_audit");
/// Position (8 bytes, big-endian) → [`hapki_domain::audit::Seal`] of the record there.
pub const SM_AUDIT_SEALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_audit_seals");

/// Issuer id → [`crate::Rollover`] from that issuer to its successor.
pub const SM_ROLLOVERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_rollovers");

/// Issuer id → latest [`crate::CrlHead`]: a CRL recorded without its bytes (state format 2).
pub const SM_CRL_HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_crl_heads");
/// Issuer id ‖ `/` ‖ serial → nothing: revocations applied after the issuer's latest
/// [`crate::CrlHead`], which its CRL does not list ([`crate::crl_head`]).
pub const SM_CRL_PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_crl_pending");

/// Issuer id → [`crate::crl_delta::DeltaState`]: the complete CRL that has delta CRLs, and
/// the latest of them (state format 3).
pub const SM_CRL_DELTAS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_crl_deltas");
/// Issuer id ‖ `/` ‖ serial → nothing: revocations applied after the issuer's latest delta
/// head, which that delta does not list ([`crate::crl_delta`]).
pub const SM_CRL_SINCE_DELTA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_crl_since_delta");

/// Issuer id ‖ `/` ‖ partition (4 bytes, big-endian) ‖ serial → nothing: the CRL partition
/// each revoked certificate names ([`crate::crl_partition`]).
pub const SM_REVOKED_PARTITION: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_revoked_partition");

/// ACME: the secret, directories, EAB key ids, accounts, orders, authorizations,
/// renewal hints and redeemed nonces, by key prefix (format 4; [`crate::acme`]).
pub const SM_ACME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_acme");

/// Not-after (8 bytes, big-endian) ‖ serial (20 bytes) → nothing: every stored certificate
/// by the time it expires, derived from [`SM_CERTS`] ([`crate::index`]).
pub const IDX_CERT_EXPIRY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("idx_cert_expiry");
/// Serial (20 bytes) → nothing: every revoked certificate stored, derived from [`SM_CERTS`]
/// ([`crate::index`]).
pub const IDX_REVOKED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("idx_revoked");
/// Name key ‖ 0 ‖ serial (20 bytes) → nothing: each certificate's subject alternative names
/// and common name, DNS names with their labels reversed, derived from [`SM_CERTS`]
/// ([`crate::index`]).
pub const IDX_CERT_NAMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("idx_cert_names");
/// Index name → version of the index as built; an index of another version is built anew.
pub const IDX_META: TableDefinition<&str, u32> = TableDefinition::new("idx_meta");

/// Raft log: index → entry ([`crate::codec`]).
pub const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Raft bookkeeping: `vote`, `committed`, `last_purged`, `applied`, `membership`, `snapshot_meta`.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// A state-machine table: every one is keyed and valued by bytes.
pub type SmTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// The state-machine tables, in the fixed order snapshots and digests use; new tables go
/// at the end, and count in the digest only once they hold rows (so that a state without
/// them digests as it did before they existed).
pub const SM_TABLES: [SmTable; 22] = [
    SM_META,
    SM_ISSUERS,
    SM_CERTS,
    SM_REVOKED,
    SM_PROFILES,
    SM_TOKENS,
    SM_CRLS,
    SM_IDEMPOTENCY,
    SM_NODES,
    SM_ARCHIVE,
    SM_RECOVERIES,
    SM_BACKUPS,
    SM_AUDIT,
    SM_AUDIT_SEALS,
    SM_ROLLOVERS,
    SM_CRL_HEADS,
    SM_CRL_PENDING,
    SM_CRL_DELTAS,
    SM_CRL_SINCE_DELTA,
    SM_REVOKED_PARTITION,
    SM_ACME,
    SM_IDEMPOTENCY_DAYS,
];

/// How many of [`SM_TABLES`] count in the digest even when empty.
pub const SM_TABLES_ALWAYS_DIGESTED: usize = 9;
