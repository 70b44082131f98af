//! Who is calling: bearer tokens (JWT) verified into a [`Principal`].
//!
//! The [`Authenticator`] checks a token's signature, algorithm, issuer,
//! audience and expiry against keys from a JWKS (file or URL: RS256 or
//! ES256, for production identity providers) or an HS256 [`Secret`] (local
//! development and tests, which mint their own tokens with
//! [`Claims::sign_hs256`]). The role is the token's `role` claim
//! (`customer`, `merchant`, `operator`, `courier`); a customer's `sub` is its customer
//! id. What each role may do is the caller's policy, not this module's.
//!
//! Every failure is an [`AuthError`]: [`AuthError::is_unauthenticated`]
//! ones answer `401`/`UNAUTHENTICATED`, [`AuthError::Forbidden`]
//! `403`/`PERMISSION_DENIED`. Messages never repeat the token.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::settings::SettingsError;

/// The default `iss` of the shop's tokens.
pub const DEFAULT_ISSUER: &str = "ordersaga";
/// The default `aud` of the shop's tokens.
pub const DEFAULT_AUDIENCE: &str = "ordersaga-api";
/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the
/// hash's size).
pub const MIN_HS256_SECRET: usize = 32;
/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;

/// What a caller is to the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A buyer; the token's subject is its customer id.
    Customer,
    /// The shop's staff: catalog, stock, shipments, every order.
    Merchant,
    /// Runs the system: everything, including the needs-attention actions.
    Operator,
    /// Carries shipments: dispatches and delivers them, and nothing else.
    Courier,
}

impl Role {
    /// The role as the `role` claim spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Merchant => "merchant",
            Self::Operator => "operator",
            Self::Courier => "courier",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Self::Customer),
            "merchant" => Ok(Self::Merchant),
            "operator" => Ok(Self::Operator),
            "courier" => Ok(Self::Courier),
            other => Err(format!(
                "unknown role {other:?}: customer, merchant, operator or courier"
            )),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: a customer's customer id, a staff member's name.
    pub subject: String,
    /// The token's `role`.
    pub role: Role,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header / `authorization` metadata.
    #[error("a bearer token is required")]
    Missing,
    /// The header is not `Bearer <token>`.
    #[error("the authorization header must be `Bearer <token>`")]
    Malformed,
    /// The token does not verify: signature, algorithm, key, issuer,
    /// audience, expiry or claims (which one is said, the token is not).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Authenticated, but the role may not do this.
    #[error("the {role} role may not {action}")]
    Forbidden {
        /// The caller's role.
        role: Role,
        /// What it asked for.
        action: String,
    },
}

impl AuthError {
    /// `401`/`UNAUTHENTICATED` (anything but [`AuthError::Forbidden`],
    /// which is `403`/`PERMISSION_DENIED`).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(self, Self::Forbidden { .. })
    }

    /// [`AuthError::Forbidden`] for `role` asking for `action`.
    pub fn forbidden(role: Role, action: impl Into<String>) -> Self {
        Self::Forbidden {
            role,
            action: action.into(),
        }
    }
}

/// Why an [`Authenticator`] cannot be built or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Neither a secret nor a JWKS is configured.
    #[error(
        "no token keys: set ORDERSAGA_AUTH_HS256_SECRET (development) or \
         ORDERSAGA_AUTH_JWKS_FILE / ORDERSAGA_AUTH_JWKS_URL"
    )]
    NotConfigured,
    /// The HS256 secret is too short.
    #[error("ORDERSAGA_AUTH_HS256_SECRET must be at least {MIN_HS256_SECRET} bytes")]
    WeakSecret,
    /// The JWKS file could not be read.
    #[error("JWKS file {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The JWKS URL could not be fetched.
    #[error("JWKS from {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The JWKS is not a JWK set, or holds no RS256/ES256 key.
    #[error("JWKS: {0}")]
    Invalid(String),
}

/// Where the verifying keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// One shared secret, HS256 (local development).
    Hs256(Secret),
    /// A JWK set in a file (RS256/ES256 public keys).
    JwksFile(PathBuf),
    /// A JWK set served by the identity provider, fetched at start and on
    /// [`Authenticator::refresh`].
    JwksUrl(String),
}

/// How tokens are verified: the issuer and audience every token must
/// carry, and exactly one source of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// The keys; `None` refuses to build an [`Authenticator`].
    pub keys: Option<KeySource>,
    /// More than one key source was given (refused by [`AuthSettings::check`]).
    conflicting: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_string(),
            audience: DEFAULT_AUDIENCE.to_string(),
            keys: None,
            conflicting: false,
        }
    }
}

impl AuthSettings {
    /// Development settings: the default issuer and audience, `secret`.
    pub fn hs256(secret: Secret) -> Self {
        Self {
            keys: Some(KeySource::Hs256(secret)),
            ..Self::default()
        }
    }

    /// Applies the `ORDERSAGA_AUTH_*` settings given.
    pub fn apply(&mut self, vars: AuthVars) {
        if let Some(issuer) = vars.auth_issuer {
            self.issuer = issuer;
        }
        if let Some(audience) = vars.auth_audience {
            self.audience = audience;
        }
        let mut given = [
            vars.auth_hs256_secret.map(KeySource::Hs256),
            vars.auth_jwks_file.map(KeySource::JwksFile),
            vars.auth_jwks_url.map(KeySource::JwksUrl),
        ]
        .into_iter()
        .flatten();
        if let Some(keys) = given.next() {
            self.conflicting = given.next().is_some();
            self.keys = Some(keys);
        }
    }

    /// Refuses more than one key source (which one is meant?).
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.conflicting {
            return Err(SettingsError::Invalid {
                name: "ORDERSAGA_AUTH_HS256_SECRET, ORDERSAGA_AUTH_JWKS_FILE, \
                       ORDERSAGA_AUTH_JWKS_URL"
                    .to_string(),
                problem: "set only one of them".to_string(),
            });
        }
        Ok(())
    }
}

/// The token settings as given (`ORDERSAGA_AUTH_*`); every field is text,
/// so a process's settings can `#[serde(flatten)]` it.
#[derive(Debug, Default, Deserialize)]
pub struct AuthVars {
    auth_issuer: Option<String>,
    auth_audience: Option<String>,
    auth_hs256_secret: Option<Secret>,
    auth_jwks_file: Option<PathBuf>,
    auth_jwks_url: Option<String>,
}

/// The claims the shop reads (and mints, in development).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the customer id of a customer.
    pub sub: String,
    /// The caller's role.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
}

impl Claims {
    /// Claims for `subject` as `role`, valid for `ttl` from now, with the
    /// issuer and audience `settings` verify.
    pub fn new(settings: &AuthSettings, subject: &str, role: Role, ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self {
            sub: subject.to_string(),
            role,
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: now,
        }
    }

    /// The token: these claims signed HS256 with `secret`.
    pub fn sign_hs256(&self, secret: &Secret) -> Result<String, AuthError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            self,
            &EncodingKey::from_secret(secret.expose().as_bytes()),
        )
        .map_err(|e| AuthError::InvalidToken(e.to_string()))
    }
}

/// One verifying key and the one algorithm it verifies.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens; cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Authenticator {
    issuer: String,
    audience: String,
    source: KeySource,
    keys: Arc<RwLock<Arc<Vec<Key>>>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the keys (reads the JWKS file, fetches the JWKS URL).
    pub async fn new(settings: &AuthSettings) -> Result<Self, KeysError> {
        let source = settings.keys.clone().ok_or(KeysError::NotConfigured)?;
        let keys = load_keys(&source).await?;
        Ok(Self {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            source,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
        })
    }

    /// Whether the keys come from a JWKS URL (worth refreshing now and
    /// then: identity providers rotate their keys).
    pub fn fetches_keys(&self) -> bool {
        matches!(self.source, KeySource::JwksUrl(_))
    }

    /// Reloads the JWKS (file or URL); on failure the keys in use stay.
    pub async fn refresh(&self) -> Result<(), KeysError> {
        let keys = load_keys(&self.source).await?;
        if let Ok(mut current) = self.keys.write() {
            *current = Arc::new(keys);
        }
        Ok(())
    }

    /// The caller behind an `Authorization` header value
    /// (`Bearer <token>`).
    pub fn authenticate(&self, authorization_header: Option<&str>) -> Result<Principal, AuthError> {
        let header = authorization_header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        self.verify(token)
    }

    /// The caller behind a bare token.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // An `alg` jsonwebtoken does not know (`none` included) fails here.
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let keys = self
            .keys
            .read()
            .map(|k| Arc::clone(&k))
            .map_err(|_| AuthError::InvalidToken("keys unavailable".into()))?;
        let key = keys
            .iter()
            .find(|k| match (&header.kid, &k.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                (Some(_), None) => false,
                (None, _) => keys.len() == 1,
            })
            .ok_or_else(|| AuthError::InvalidToken("no key for this token".into()))?;
        // The key decides the algorithm, never the token: an HS256 token
        // made with an RSA public key as its secret is refused here.
        if header.alg != key.algorithm {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(invalid)?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::InvalidToken("empty subject".into()));
        }
        Ok(Principal {
            subject: claims.sub,
            role: claims.role,
        })
    }
}

/// What went wrong, without the token.
fn invalid(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "algorithm not accepted",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::ImmatureSignature => "not valid yet",
        _ => "malformed",
    };
    AuthError::InvalidToken(why.to_string())
}

async fn load_keys(source: &KeySource) -> Result<Vec<Key>, KeysError> {
    let jwks = match source {
        KeySource::Hs256(secret) => {
            if secret.expose().len() < MIN_HS256_SECRET {
                return Err(KeysError::WeakSecret);
            }
            return Ok(vec![Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
            }]);
        }
        KeySource::JwksFile(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| KeysError::File {
                    path: path.clone(),
                    source,
                })?;
            serde_json::from_str::<JwkSet>(&text).map_err(|e| KeysError::Invalid(e.to_string()))?
        }
        KeySource::JwksUrl(url) => {
            let fetch = async {
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<JwkSet>()
                    .await
            };
            fetch.await.map_err(|source| KeysError::Fetch {
                url: url.clone(),
                source,
            })?
        }
    };
    let keys: Vec<Key> = jwks.keys.iter().filter_map(public_key).collect();
    if keys.is_empty() {
        return Err(KeysError::Invalid("no RS256 or ES256 key".into()));
    }
    Ok(keys)
}

/// An RS256 or ES256 (P-256) verifying key; other keys (encryption keys,
/// other curves, symmetric `oct` keys) are skipped.
fn public_key(jwk: &Jwk) -> Option<Key> {
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return None,
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests;
