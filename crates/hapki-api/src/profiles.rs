//! `/v1/profiles`: the profiles certificates are issued under.

use hapki_domain::profile::Profile;
use serde::{Deserialize, Serialize};

/// `GET /v1/profiles`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileList {
    pub profiles: Vec<Profile>,
}
