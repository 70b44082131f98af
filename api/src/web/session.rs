//! The browser's session: one signed cookie that carries who signed in (a
//! [`Principal`] with an expiry), the cart, and a random session id that
//! the CSRF tokens of its forms are bound to.
//!
//! The cookie is `base64url(json) "." base64url(HMAC-SHA256(key, json))`:
//! the server keeps no session table, a changed byte fails the MAC, and a
//! new key (a restart without `ORDERSAGA_WEB_SESSION_KEY`) signs everyone
//! out. It is `HttpOnly` (no script reads it), `SameSite=Lax` (sent on the
//! top-level return from the payment page, never on a cross-site form
//! post) and `Secure` when the API serves TLS.
//!
//! CSRF: every form carries `HMAC(key, "csrf:" sid)` (a synchronizer token
//! bound to the session) and every POST is refused with `403` unless the
//! token matches this session's; signing in starts a new session id, so a
//! token from before the sign-in is worthless after it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ordersaga_runtime::auth::{Principal, Role};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ordersaga_session";
/// The form field of the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// Most lines a cart holds (the cookie stays small).
pub const MAX_CART_LINES: usize = 20;

type HmacSha256 = Hmac<Sha256>;

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    /// The principal's subject: a customer's customer id, staff's name.
    pub subject: String,
    /// The principal's role.
    pub role: Role,
    /// The name signed in with (shown in the header).
    pub username: String,
}

/// One cart line: validated against the catalog when the order is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: i64,
}

/// What the cookie carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random; the CSRF tokens are bound to it.
    pub sid: String,
    /// Unix seconds after which the cookie is ignored.
    pub exp: u64,
    /// Who signed in, if anyone.
    pub user: Option<SessionUser>,
    /// The cart.
    #[serde(default)]
    pub cart: Vec<CartLine>,
}

impl Session {
    /// The principal the service layer checks, if signed in.
    pub fn principal(&self) -> Option<Principal> {
        self.user.as_ref().map(|u| Principal {
            subject: u.subject.clone(),
            role: u.role,
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 16 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs, opens and checks sessions with one key.
#[derive(Clone)]
pub struct SessionKeys {
    key: Vec<u8>,
    ttl: Duration,
    secure: bool,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("ttl", &self.ttl)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Keys over `key` (any length; 32 random bytes when none is
    /// configured); sessions live `ttl`; `secure` marks the cookie
    /// `Secure` (TLS).
    pub fn new(key: &[u8], ttl: Duration, secure: bool) -> Self {
        Self {
            key: key.to_vec(),
            ttl,
            secure,
        }
    }

    /// A random key for a process without a configured one.
    pub fn random_key() -> Vec<u8> {
        let mut key = vec![0u8; 32];
        OsRng.fill_bytes(&mut key);
        key
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A new anonymous session.
    pub fn fresh(&self) -> Session {
        Session {
            sid: random_token(),
            exp: now_secs() + self.ttl.as_secs(),
            user: None,
            cart: Vec::new(),
        }
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&json);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// The session in a cookie value, if its MAC verifies and it has not
    /// expired.
    pub fn open(&self, value: &str) -> Option<Session> {
        let (body, tag) = value.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(&json);
        mac.verify_slice(&tag).ok()?;
        let session: Session = serde_json::from_slice(&json).ok()?;
        (session.exp > now_secs()).then_some(session)
    }

    /// The session of a request's `Cookie` headers, or a fresh one.
    pub fn from_headers(&self, headers: &HeaderMap) -> (Session, bool) {
        let found = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == SESSION_COOKIE)
            .find_map(|(_, value)| self.open(value));
        match found {
            Some(session) => (session, true),
            None => (self.fresh(), false),
        }
    }

    /// The `Set-Cookie` header that stores `session`.
    pub fn set_cookie(&self, session: &Session) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value = format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.seal(session),
            session.exp.saturating_sub(now_secs()),
        );
        // Base64url and fixed ASCII only.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The CSRF token of `session`'s forms.
    pub fn csrf_token(&self, session: &Session) -> String {
        let mut mac = self.mac();
        mac.update(b"csrf:");
        mac.update(session.sid.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `token` is `session`'s CSRF token (compared in constant time).
    pub fn check_csrf(&self, session: &Session, token: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(b"csrf:");
        mac.update(session.sid.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// A signed-in session for `user`, with a new session id (no session
    /// fixation: tokens and cookies from before do not carry over) and the
    /// cart kept.
    pub fn sign_in(&self, before: &Session, user: SessionUser) -> Session {
        Session {
            sid: random_token(),
            exp: now_secs() + self.ttl.as_secs(),
            user: Some(user),
            cart: before.cart.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::new(b"a test key", Duration::from_secs(3600), false)
    }

    fn alice(keys: &SessionKeys) -> Session {
        keys.sign_in(
            &keys.fresh(),
            SessionUser {
                subject: "alice".into(),
                role: Role::Customer,
                username: "alice".into(),
            },
        )
    }

    #[test]
    fn a_sealed_session_opens_and_a_changed_one_does_not() {
        let keys = keys();
        let session = alice(&keys);
        let sealed = keys.seal(&session);
        assert_eq!(keys.open(&sealed), Some(session.clone()));
        // Another key, a changed body, a changed tag: refused.
        let other = SessionKeys::new(b"another key", Duration::from_secs(3600), false);
        assert_eq!(other.open(&sealed), None);
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut forged = session.clone();
        forged.user.as_mut().unwrap().role = Role::Operator;
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(keys.open(&format!("{forged_body}.{tag}")), None);
        assert_eq!(keys.open(&format!("{body}.AAAA")), None);
        assert_eq!(keys.open("garbage"), None);
    }

    #[test]
    fn an_expired_session_is_ignored() {
        let keys = keys();
        let mut session = alice(&keys);
        session.exp = now_secs() - 1;
        assert_eq!(keys.open(&keys.seal(&session)), None);
    }

    #[test]
    fn the_cookie_is_http_only_same_site_and_secure_under_tls() {
        let plain = keys().set_cookie(&alice(&keys()));
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("ordersaga_session="), "{plain}");
        assert!(plain.contains("; HttpOnly"), "{plain}");
        assert!(plain.contains("; SameSite=Lax"), "{plain}");
        assert!(plain.contains("; Path=/"), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = SessionKeys::new(b"k", Duration::from_secs(60), true);
        let cookie = tls.set_cookie(&tls.fresh());
        assert!(cookie.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let keys = keys();
        let session = alice(&keys);
        let token = keys.csrf_token(&session);
        assert!(keys.check_csrf(&session, &token));
        assert!(!keys.check_csrf(&session, ""));
        assert!(!keys.check_csrf(&session, "not base64 !"));
        // Signing in again (a new session id) invalidates the old token.
        let again = keys.sign_in(&session, session.user.clone().unwrap());
        assert!(!keys.check_csrf(&again, &token));
        assert_eq!(again.cart, session.cart);
    }

    #[test]
    fn the_session_is_read_from_the_cookie_header() {
        let keys = keys();
        let session = alice(&keys);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "other=1; {SESSION_COOKIE}={}",
                keys.seal(&session)
            ))
            .unwrap(),
        );
        assert_eq!(keys.from_headers(&headers), (session, true));
        let (fresh, found) = keys.from_headers(&HeaderMap::new());
        assert!(!found && fresh.user.is_none());
    }
}
