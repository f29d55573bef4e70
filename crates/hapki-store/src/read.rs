//! Reads from the local replica: issuers, certificates (listings are in [`crate::listing`]), profiles,
//! tokens, CRLs, the revoked list of an issuer, and the state digest.

use aws_lc_rs::digest;
use hapki_domain::profile::Profile;
use hapki_domain::serial::Serial;
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::codec::decode;
use crate::records::{CertRecord, CrlRecord, IssuerRecord, NodeRecord, Revocation, SerialLease, Settings, TokenRecord};
use crate::tables::*;
use crate::StoreError;

/// A consistent view of the state machine at one moment.
pub struct StateReader {
    txn: ReadTransaction,
}

impl StateReader {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        StateReader { txn }
    }

    /// The read transaction behind this view: a snapshot of it is of the same moment.
    pub fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.txn.open_table(SM_META)?;
        Ok(t.get(key.as_bytes())?.map(|v| v.value().to_vec()))
    }

    /// The layout version the state machine was written in, once bootstrapped.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        self.meta("schema_version")?
            .map(|b| crate::records::decode_u32("schema_version", &b))
            .transpose()
    }

    /// The state's format ([`crate::format`]): 1 until a higher one is recorded.
    pub fn state_format(&self) -> Result<u32, StoreError> {
        self.meta("state_format")?
            .map(|b| crate::records::decode_u32("state_format", &b))
            .transpose()
            .map(|f| f.unwrap_or(crate::format::BASELINE))
    }

    /// The number of the KEK the state's keys are sealed under (0 until the first rotation).
    pub fn kek_id(&self) -> Result<u32, StoreError> {
        self.meta("kek_id")?
            .map(|b| crate::records::decode_u32("kek_id", &b))
            .transpose()
            .map(|id| id.unwrap_or(0))
    }

    /// The cluster id, once bootstrapped.
    pub fn cluster_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta("cluster_id")?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The cluster's internal CA, once created.
    pub fn internal_ca(&self) -> Result<Option<crate::records::InternalCaRecord>, StoreError> {
        self.meta("internal_ca")?.map(|b| decode(&b)).transpose()
    }

    /// Replicated settings.
    pub fn settings(&self) -> Result<Settings, StoreError> {
        match self.meta("settings")? {
            Some(b) => decode(&b),
            None => Ok(Settings::default()),
        }
    }

    /// The default issuer's id.
    pub fn default_issuer_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta("default_issuer")?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn issuer(&self, id: &str) -> Result<Option<IssuerRecord>, StoreError> {
        let t = self.txn.open_table(SM_ISSUERS)?;
        t.get(id.as_bytes())?.map(|v| decode(v.value())).transpose()
    }

    pub fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        all_values(&self.txn, SM_ISSUERS)
    }

    pub fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        let t = self.txn.open_table(SM_PROFILES)?;
        t.get(name.as_bytes())?
            .map(|v| serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    pub fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let t = self.txn.open_table(SM_PROFILES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    pub fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        let t = self.txn.open_table(SM_CERTS)?;
        t.get(serial.0.as_slice())?.map(|v| decode(v.value())).transpose()
    }

    /// The revocation of a certificate of `issuer_id`, if revoked.
    pub fn revocation(&self, issuer_id: &str, serial: &Serial) -> Result<Option<Revocation>, StoreError> {
        let t = self.txn.open_table(SM_REVOKED)?;
        let key = crate::apply::revoked_key(issuer_id, &serial.0);
        t.get(key.as_slice())?.map(|v| decode(v.value())).transpose()
    }

    /// Number of certificates stored.
    pub fn cert_count(&self) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(SM_CERTS)?.len()?)
    }

    /// Certificates matching `filter`, in serial order. Revoked ones are read through the
    /// Every revocation of an issuer, in serial order, for building its CRL.
    pub fn revoked_of(&self, issuer_id: &str) -> Result<Vec<(Serial, Revocation)>, StoreError> {
        let t = self.txn.open_table(SM_REVOKED)?;
        let (prefix, end) = crate::crl_head::issuer_prefix(issuer_id);
        let mut out = Vec::new();
        for row in t.range(prefix.as_slice()..end.as_slice())? {
            let (k, v) = row?;
            let serial = Serial::from_bytes(&k.value()[prefix.len()..])
                .ok_or_else(|| StoreError::Corrupt("revocation key".into()))?;
            out.push((serial, decode(v.value())?));
        }
        Ok(out)
    }

    /// The certificate an idempotency key (its SHA-256) issued or revoked, if a command of
    /// time `at` would still find it.
    pub fn idempotent_serial(&self, key: &[u8; 32], at: u64) -> Result<Option<Serial>, StoreError> {
        let found = crate::idempotency::find(
            &self.txn.open_table(SM_IDEMPOTENCY_DAYS)?,
            &self.txn.open_table(SM_IDEMPOTENCY)?,
            key,
            at,
        )?;
        Ok(found.and_then(|v| Serial::from_bytes(&v)))
    }

    /// How many idempotency keys a forgetting at `at` of at most `max` would remove.
    pub fn forgettable_idempotency_keys(&self, at: u64, max: u32) -> Result<u64, StoreError> {
        let chosen = crate::idempotency::choose(
            &self.txn.open_table(SM_IDEMPOTENCY_DAYS)?,
            &self.txn.open_table(SM_IDEMPOTENCY)?,
            &self.txn.open_table(SM_CERTS)?,
            at,
            max,
        )?;
        Ok(chosen.len() as u64)
    }

    /// Idempotency keys the state remembers.
    pub fn idempotency_keys(&self) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(SM_IDEMPOTENCY_DAYS)?.len()? + self.txn.open_table(SM_IDEMPOTENCY)?.len()?)
    }

    pub fn crl(&self, issuer_id: &str) -> Result<Option<CrlRecord>, StoreError> {
        let t = self.txn.open_table(SM_CRLS)?;
        t.get(issuer_id.as_bytes())?.map(|v| decode(v.value())).transpose()
    }

    /// A token by the SHA-256 of its secret.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let t = self.txn.open_table(SM_TOKENS)?;
        t.get(hash.as_slice())?.map(|v| decode(v.value())).transpose()
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        all_values(&self.txn, SM_TOKENS)
    }

    /// The latest range of sequential serials leased to `node`.
    pub fn serial_lease(&self, node: u64) -> Result<Option<SerialLease>, StoreError> {
        self.meta(&format!("serial_lease:{node:016x}"))?
            .map(|b| decode(&b))
            .transpose()
    }

    /// What the replicated state knows of a node (admitted or removed).
    pub fn node(&self, id: u64) -> Result<Option<NodeRecord>, StoreError> {
        let t = self.txn.open_table(SM_NODES)?;
        t.get(id.to_be_bytes().as_slice())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Every node the cluster certified, in id order.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        all_values(&self.txn, SM_NODES)
    }

    /// The archived key of certificate `serial`, if its key is archived.
    pub fn archived_key(&self, serial: &Serial) -> Result<Option<crate::ArchivedKey>, StoreError> {
        let t = self.txn.open_table(SM_ARCHIVE)?;
        t.get(serial.0.as_slice())?.map(|v| decode(v.value())).transpose()
    }

    /// Every archived key, in serial order.
    pub fn archived_keys(&self) -> Result<Vec<crate::ArchivedKey>, StoreError> {
        all_values(&self.txn, SM_ARCHIVE)
    }

    /// The archive's transport key, once made.
    pub fn archive_transport(&self) -> Result<Option<crate::TransportRecord>, StoreError> {
        self.meta("archive_transport")?.map(|b| decode(&b)).transpose()
    }

    /// How many approvals a recovery needs now (the default until one is set).
    pub fn recovery_policy(&self) -> Result<crate::RecoveryPolicy, StoreError> {
        Ok(self
            .meta("recovery_policy")?
            .map(|b| decode(&b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Recovery request `id`.
    pub fn recovery(&self, id: &str) -> Result<Option<crate::RecoveryRequest>, StoreError> {
        let t = self.txn.open_table(SM_RECOVERIES)?;
        t.get(id.as_bytes())?.map(|v| decode(v.value())).transpose()
    }

    /// Every recovery request, by id.
    pub fn recoveries(&self) -> Result<Vec<crate::RecoveryRequest>, StoreError> {
        all_values(&self.txn, SM_RECOVERIES)
    }

    /// SHA-256 over every state-machine table, in a fixed order: equal on two
    /// replicas exactly when they hold the same data.
    pub fn digest(&self) -> Result<String, StoreError> {
        self.digest_of(|_| true, |_, _| {})
    }

    /// [`StateReader::digest`], and how many bytes [`crate::export_state`] writes for this
    /// view, in one pass over the rows.
    pub fn digest_and_snapshot_len(&self) -> Result<(String, u64), StoreError> {
        let mut len = crate::snapshot::FRAME_LEN;
        let digest = self.digest_of(|_| true, |k, v| len += crate::snapshot::row_len(k, v))?;
        Ok((digest, len))
    }

    /// The digest of everything but the audit log: what a refused request leaves as it
    /// was (the audit log records refused attempts too).
    pub fn digest_without_audit(&self) -> Result<String, StoreError> {
        let audit = [SM_AUDIT, SM_AUDIT_SEALS].map(|t| redb::TableHandle::name(&t).to_string());
        self.digest_of(|t| !audit.iter().any(|a| a == redb::TableHandle::name(&t)), |_, _| {})
    }

    /// The digest of the tables `include` accepts; `on_row` sees every row digested
    /// (every row of those tables: an empty table is only left out of the digest).
    fn digest_of(
        &self,
        include: impl Fn(SmTable) -> bool,
        mut on_row: impl FnMut(&[u8], &[u8]),
    ) -> Result<String, StoreError> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for (i, table) in SM_TABLES.into_iter().enumerate() {
            if !include(table) || (i >= SM_TABLES_ALWAYS_DIGESTED && self.txn.open_table(table)?.is_empty()?) {
                continue;
            }
            ctx.update(redb::TableHandle::name(&table).as_bytes());
            crate::snapshot::for_each_row(&self.txn, table, |k, v| {
                on_row(k, v);
                ctx.update(&(k.len() as u32).to_be_bytes());
                ctx.update(k);
                ctx.update(&(v.len() as u32).to_be_bytes());
                ctx.update(v);
                Ok(())
            })?;
        }
        Ok(hex::encode(ctx.finish().as_ref()))
    }
}

pub(crate) fn all_values<K: redb::Key + 'static, T: for<'de> serde::Deserialize<'de>>(
    txn: &ReadTransaction,
    def: TableDefinition<K, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let t = txn.open_table(def)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}
