//! The wire contract of the payment webhooks, the one thing the shop and
//! the payments sandbox (which plays an outside company) share: the
//! headers, how a body is signed and verified, and the event type names.
//!
//! The signature is `v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` in
//! [`SIGNATURE_HEADER`], the Unix-seconds timestamp in [`TIMESTAMP_HEADER`].
//! Signing the timestamp with the body makes a captured request useless
//! after [`DEFAULT_TOLERANCE`]: a replay is stale, an edited timestamp breaks
//! the signature. (Real PayPal signs differently and is verified through its
//! `verify-webhook-signature` API; see `docs/payments.md`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "Ordersaga-Webhook-Timestamp";
/// Header carrying `v1=<hex>`; several comma-separated values are accepted
/// so a secret can be rotated without dropping events, up to
/// [`MAX_SIGNATURES`].
pub const SIGNATURE_HEADER: &str = "Ordersaga-Webhook-Signature";
/// Most values the signature header may carry: each one costs an HMAC
/// check before the sender is authenticated, so more is refused unread.
/// Two cover a rotation (old and new secret).
pub const MAX_SIGNATURES: usize = 4;
/// How far a timestamp may be from the receiver's clock, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

const SCHEME: &str = "v1=";

/// Why a webhook is not believed. Every variant means "change nothing";
/// [`WebhookError::TooManySignatures`] is a malformed request (400), every
/// other one a failed authentication (401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The timestamp header is missing or not an integer.
    #[error("webhook timestamp is missing or malformed")]
    MalformedTimestamp,
    /// The timestamp is further from now than the tolerance (a replay, or a
    /// sender with a broken clock).
    #[error("webhook timestamp is {skew_secs}s away from now (tolerance {tolerance_secs}s)")]
    Stale {
        /// Distance from the receiver's clock, seconds.
        skew_secs: u64,
        /// The accepted distance, seconds.
        tolerance_secs: u64,
    },
    /// The signature header has no `v1=<hex>` value.
    #[error("webhook signature is missing or malformed")]
    MalformedSignature,
    /// The signature header carries more than [`MAX_SIGNATURES`] values;
    /// none was checked.
    #[error("webhook signature header has {count} values; at most {MAX_SIGNATURES} are accepted")]
    TooManySignatures {
        /// Values in the header.
        count: usize,
    },
    /// No signature matches the body and timestamp under the secret.
    #[error("webhook signature does not match")]
    BadSignature,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (RFC 2104: long keys are hashed, short
    // ones padded); `new_from_slice` only fails for fixed-key MACs.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("{SCHEME}{}", hex::encode(tag))
}

/// Unix seconds of `at` (0 before the epoch).
pub fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks a webhook: the signature header has at most [`MAX_SIGNATURES`]
/// values, the timestamp is within `tolerance` of `now` and one of the
/// `v1=` signatures is the HMAC of `"{timestamp}.{body}"` under `secret`.
/// The comparison is constant-time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    // Counted before anything is decoded or hashed.
    let count = signature.split(',').count();
    if count > MAX_SIGNATURES {
        return Err(WebhookError::TooManySignatures { count });
    }
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::MalformedTimestamp)?;
    let skew = unix_seconds(now).abs_diff(sent);
    if skew > tolerance.as_secs() {
        return Err(WebhookError::Stale {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let tags: Vec<Vec<u8>> = signature
        .split(',')
        .filter_map(|part| part.trim().strip_prefix(SCHEME))
        .filter_map(|h| hex::decode(h).ok())
        .collect();
    if tags.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    let expected = mac(secret, timestamp.trim(), body);
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// The event types the sandbox sends (PayPal's names, plus
/// `CHECKOUT.ORDER.VOIDED`, which PayPal does not have).
pub mod event_type {
    /// The buyer approved the order on the approval page.
    pub const ORDER_APPROVED: &str = "CHECKOUT.ORDER.APPROVED";
    /// The order was voided: cancelled by the buyer, or by the shop.
    pub const ORDER_VOIDED: &str = "CHECKOUT.ORDER.VOIDED";
    /// Money was captured.
    pub const CAPTURE_COMPLETED: &str = "PAYMENT.CAPTURE.COMPLETED";
    /// The capture was declined; no money taken.
    pub const CAPTURE_DENIED: &str = "PAYMENT.CAPTURE.DENIED";
    /// The capture was refunded.
    pub const CAPTURE_REFUNDED: &str = "PAYMENT.CAPTURE.REFUNDED";
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";

    #[test]
    fn a_signature_verifies_only_for_its_body_time_and_secret() {
        let now = SystemTime::now();
        let ts = unix_seconds(now);
        let body = br#"{"id":"WH-1"}"#;
        let sig = sign(SECRET, ts, body);
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(
            verify(SECRET, &ts.to_string(), body, &sig, now, tol),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, &ts.to_string(), br#"{"id":"WH-2"}"#, &sig, now, tol),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(b"other", &ts.to_string(), body, &sig, now, tol),
            Err(WebhookError::BadSignature)
        );
        // Moving the timestamp into the window does not help a replay.
        assert_eq!(
            verify(SECRET, &(ts + 1).to_string(), body, &sig, now, tol),
            Err(WebhookError::BadSignature)
        );
        let later = now + Duration::from_secs(301);
        assert!(matches!(
            verify(SECRET, &ts.to_string(), body, &sig, later, tol),
            Err(WebhookError::Stale { skew_secs: 301, .. })
        ));
        assert_eq!(
            verify(SECRET, "yesterday", body, &sig, now, tol),
            Err(WebhookError::MalformedTimestamp)
        );
        assert_eq!(
            verify(SECRET, &ts.to_string(), body, "sha256=abc", now, tol),
            Err(WebhookError::MalformedSignature)
        );
        let rotated = format!("v1=00ff, {sig}");
        assert_eq!(
            verify(SECRET, &ts.to_string(), body, &rotated, now, tol),
            Ok(())
        );
    }

    #[test]
    fn more_signature_values_than_the_cap_are_refused_unchecked() {
        let now = SystemTime::now();
        let ts = unix_seconds(now);
        let body = br#"{"id":"WH-1"}"#;
        let sig = sign(SECRET, ts, body);
        let within = [vec!["v1=00"; MAX_SIGNATURES - 1], vec![sig.as_str()]].concat();
        assert_eq!(
            verify(
                SECRET,
                &ts.to_string(),
                body,
                &within.join(","),
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
        // The genuine signature last: refused all the same, by count.
        let over = [vec!["v1=00"; MAX_SIGNATURES], vec![sig.as_str()]].concat();
        assert_eq!(
            verify(
                SECRET,
                &ts.to_string(),
                body,
                &over.join(","),
                now,
                DEFAULT_TOLERANCE
            ),
            Err(WebhookError::TooManySignatures {
                count: MAX_SIGNATURES + 1
            })
        );
    }
}
