//! Profiles as the API reads and changes them; a change goes through the log,
//! so it takes effect on every node.

use hapki_api::profiles::ProfileList;
use hapki_domain::profile::Profile;
use hapki_store::Command;

use super::{Pki, PkiError};
use crate::auth::{Action, Caller};

impl Pki {
    /// Every profile.
    pub fn profiles(&self, caller: &Caller) -> Result<ProfileList, PkiError> {
        caller.may(Action::ReadStatus)?;
        Ok(ProfileList {
            profiles: self.reader()?.profiles()?,
        })
    }

    /// The profile named `name`.
    pub fn profile_for(&self, caller: &Caller, name: &str) -> Result<Profile, PkiError> {
        caller.may(Action::ReadStatus)?;
        Ok(self.profile(name)?.as_ref().clone())
    }

    /// Creates `profile` (`create`) or replaces the one of its name; `named` is the name the
    /// request addressed, which must be the profile's own.
    pub async fn put_profile(
        &self,
        caller: &Caller,
        profile: Profile,
        create: bool,
        named: Option<&str>,
    ) -> Result<Profile, PkiError> {
        caller.may(Action::ManageProfiles)?;
        if let Some(name) = named.filter(|n| *n != profile.name) {
            return Err(PkiError::invalid(format!(
                "the body names profile '{}' but the URL names '{name}'",
                profile.name
            )));
        }
        profile.validate()?;
        self.propose_as(
            caller,
            Command::PutProfile {
                profile: profile.clone(),
                create,
            },
        )
        .await?;
        Ok(profile)
    }
}
