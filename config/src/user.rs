//! `[[users]]` entries: who may connect, and as whom the proxy logs into the servers.

use crate::password::PasswordKind;
use crate::proxy::PoolMode;
use serde::Deserialize;
use std::fmt;

/// A user clients log in as, with optional per-user pool settings.
///
/// Debug output hides the passwords so that logging a config leaks nothing.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plaintext, an md5 verifier or a SCRAM-SHA-256 verifier (see [`PasswordKind`]).
    pub password: String,
    /// The user name towards the servers; default: `name`.
    pub server_user: Option<String>,
    /// The password towards the servers; default: `password` if it is plaintext.
    pub server_password: Option<String>,
    /// Overrides `proxy.pool_size` for this user.
    pub pool_size: Option<u32>,
    /// Overrides `proxy.pool_mode` for this user.
    pub pool_mode: Option<PoolMode>,
}

impl UserConfig {
    /// The user name to log into the servers with.
    pub fn server_user(&self) -> &str {
        self.server_user.as_deref().unwrap_or(&self.name)
    }

    /// The password to log into the servers with: `server_password`, else
    /// `password` if it is plaintext. `None` when only a verifier is known,
    /// which cannot be turned back into a password.
    pub fn server_password(&self) -> Option<&str> {
        match (&self.server_password, self.password_kind()) {
            (Some(password), _) => Some(password),
            (None, PasswordKind::Plain) => Some(&self.password),
            (None, _) => None,
        }
    }

    pub fn password_kind(&self) -> PasswordKind {
        PasswordKind::of(&self.password)
    }
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |password: Option<&String>| password.map(|_| "<hidden>");
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .field("server_user", &self.server_user)
            .field("server_password", &hidden(self.server_password.as_ref()))
            .field("pool_size", &self.pool_size)
            .field("pool_mode", &self.pool_mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(password: &str) -> UserConfig {
        UserConfig {
            name: "app".into(),
            password: password.into(),
            server_user: None,
            server_password: None,
            pool_size: None,
            pool_mode: None,
        }
    }

    #[test]
    fn server_credentials_default_to_the_client_ones() {
        let user = user("secret");
        assert_eq!(user.server_user(), "app");
        assert_eq!(user.server_password(), Some("secret"));
    }

    #[test]
    fn server_credentials_can_be_overridden() {
        let user = UserConfig {
            server_user: Some("app_rw".into()),
            server_password: Some("other".into()),
            ..user("secret")
        };
        assert_eq!(user.server_user(), "app_rw");
        assert_eq!(user.server_password(), Some("other"));
    }

    #[test]
    fn a_verifier_is_not_a_server_password() {
        let user = user("md56a422f785c9e20873908ce25d1736ae2");
        assert_eq!(user.password_kind(), PasswordKind::Md5);
        assert_eq!(user.server_password(), None);
    }

    #[test]
    fn debug_hides_passwords() {
        let user = UserConfig {
            server_password: Some("other".into()),
            ..user("secret")
        };
        let debug = format!("{user:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("other"),
            "{debug}"
        );
        assert!(debug.contains("\"app\""), "{debug}");
    }
}
