//! Time as the domain sees it: seconds since the Unix epoch, passed in by the
//! caller, and their X.509 encodings (UTCTime before 2050, GeneralizedTime after).

use std::time::Duration;

use der::asn1::{GeneralizedTime, UtcTime};
use der::DateTime;
use x509_cert::time::Time;

use crate::DomainError;

/// Seconds since 1970-01-01T00:00:00Z.
pub type UnixTime = u64;

/// The X.509 `Time` for a moment, as RFC 5280 §4.1.2.5 prescribes.
pub fn x509_time(t: UnixTime) -> Result<Time, DomainError> {
    let dt = DateTime::from_unix_duration(Duration::from_secs(t))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

/// A GeneralizedTime for a moment (OCSP uses only this form).
pub fn generalized(t: UnixTime) -> Result<GeneralizedTime, DomainError> {
    Ok(GeneralizedTime::from_date_time(DateTime::from_unix_duration(
        Duration::from_secs(t),
    )?))
}

/// RFC 3339 text for a moment, e.g. `2026-11-24T21:30:00Z`.
pub fn rfc3339(t: UnixTime) -> String {
    DateTime::from_unix_duration(Duration::from_secs(t))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| format!("@{t}"))
}
