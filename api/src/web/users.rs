//! The web pages' local users: who may sign in with a password, and as
//! which [`Principal`]. Local development and tests only (`scripts/dev`
//! writes them, with random passwords it prints); in production the
//! identity provider that issues the API's bearer tokens signs people in.
//!
//! The file (`ORDERSAGA_WEB_USERS_FILE`) is a JSON array of
//! `{"username", "password_hash", "role", "customer_id"}`: the hash is an
//! Argon2id PHC string (`ordersaga-api hash-password` makes one), the role
//! `customer`, `merchant` or `operator`, and a customer's `customer_id` its
//! principal's subject (staff act under their username).

use std::collections::HashMap;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ordersaga_runtime::auth::Role;
use serde::Deserialize;

use super::session::SessionUser;

/// One user as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebUser {
    /// What is typed on the sign-in page.
    pub username: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// The principal's role.
    pub role: Role,
    /// A customer's customer id (required for customers).
    #[serde(default)]
    pub customer_id: Option<String>,
}

impl WebUser {
    /// A user with `password` hashed now (tests and the dev script).
    pub fn with_password(
        username: &str,
        password: &str,
        role: Role,
        customer_id: Option<&str>,
    ) -> Result<Self, UsersError> {
        Ok(Self {
            username: username.to_string(),
            password_hash: hash_password(password)?,
            role,
            customer_id: customer_id.map(str::to_string),
        })
    }
}

/// Why the users cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("web users file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON array of users.
    #[error("web users file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A user is unusable (bad hash, customer without a customer id, twice).
    #[error("web user {username:?}: {problem}")]
    Invalid {
        /// Who.
        username: String,
        /// What is wrong.
        problem: String,
    },
    /// Hashing failed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// An Argon2id PHC string of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// The users, by username.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, WebUser>,
}

impl Users {
    /// Checks and indexes `users`.
    pub fn new(users: Vec<WebUser>) -> Result<Self, UsersError> {
        let mut by_name = HashMap::new();
        for user in users {
            let invalid = |problem: &str| UsersError::Invalid {
                username: user.username.clone(),
                problem: problem.to_string(),
            };
            if user.username.trim().is_empty() {
                return Err(invalid("the username is empty"));
            }
            PasswordHash::new(&user.password_hash)
                .map_err(|_| invalid("password_hash is not a PHC string"))?;
            if user.role == Role::Customer
                && user
                    .customer_id
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
            {
                return Err(invalid("a customer needs a customer_id"));
            }
            if by_name.contains_key(&user.username) {
                return Err(invalid("listed twice"));
            }
            by_name.insert(user.username.clone(), user);
        }
        Ok(Self { by_name })
    }

    /// The users of a JSON file.
    pub fn load(path: &Path) -> Result<Vec<WebUser>, UsersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| UsersError::Parse {
            path: shown,
            message: e.to_string(),
        })
    }

    /// Whether anyone can sign in.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user `username` if `password` is theirs. An unknown user costs
    /// a hash too, so the answer's time does not tell who exists.
    pub fn verify(&self, username: &str, password: &str) -> Option<SessionUser> {
        let argon = Argon2::default();
        let Some(user) = self.by_name.get(username) else {
            let _ = hash_password(password);
            return None;
        };
        let hash = PasswordHash::new(&user.password_hash).ok()?;
        argon.verify_password(password.as_bytes(), &hash).ok()?;
        let subject = match user.role {
            Role::Customer => user.customer_id.clone()?,
            _ => user.username.clone(),
        };
        Some(SessionUser {
            subject,
            role: user.role,
            username: user.username.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_signs_in_with_the_right_password_only() {
        let users = Users::new(vec![
            WebUser::with_password("alice", "s3cret", Role::Customer, Some("alice-1")).unwrap(),
            WebUser::with_password("mia", "m3rchant", Role::Merchant, None).unwrap(),
        ])
        .unwrap();
        let alice = users.verify("alice", "s3cret").unwrap();
        assert_eq!(
            (alice.subject.as_str(), alice.role),
            ("alice-1", Role::Customer)
        );
        assert!(users.verify("alice", "wrong").is_none());
        assert!(users.verify("nobody", "s3cret").is_none());
        assert_eq!(users.verify("mia", "m3rchant").unwrap().subject, "mia");
    }

    #[test]
    fn unusable_users_are_refused() {
        let customer = WebUser::with_password("c", "p", Role::Customer, None).unwrap();
        assert!(Users::new(vec![customer]).is_err());
        let mut bad = WebUser::with_password("m", "p", Role::Merchant, None).unwrap();
        bad.password_hash = "plain".into();
        assert!(Users::new(vec![bad]).is_err());
        let m = WebUser::with_password("m", "p", Role::Merchant, None).unwrap();
        assert!(Users::new(vec![m.clone(), m]).is_err());
    }
}
