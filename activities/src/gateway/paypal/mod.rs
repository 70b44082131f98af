//! `PayPalGateway`: the [`CheckoutGateway`] port over HTTP, speaking the
//! PayPal Orders v2 and Payments v2 subset the saga needs, to any
//! PayPal-compatible base URL: our payments sandbox, or PayPal's own
//! sandbox/live API (`https://api-m.sandbox.paypal.com`, which needs the
//! `paypal-tls` feature for HTTPS).
//!
//! It owns the OAuth2 client-credentials token (fetched once, reused until
//! shortly before it expires, dropped when the gateway refuses it) and the
//! mapping of HTTP results onto [`CheckoutError`]: 4xx are answers, while a
//! timeout, dropped connection or 5xx on a mutating call is an unknown
//! outcome, never a failure to be retried blindly.

use std::fmt;
use std::time::{Duration, Instant};

mod wire;

use async_trait::async_trait;
use ordersaga_domain::{Money, TransactionId};
use ordersaga_runtime::Secret;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use wire::{ErrorBody, OrderBody, RefundBody, TokenBody};

use super::checkout::{
    CaptureId, CaptureOutcome, CaptureStatus, CheckoutError, CheckoutGateway, CheckoutOrder,
    CheckoutRequest, CheckoutStatus, GatewayOrderId, Operation, OrderSnapshot, RefundOutcome,
    VoidOutcome, request_id,
};

/// PayPal's sandbox API.
pub const PAYPAL_SANDBOX_URL: &str = "https://api-m.sandbox.paypal.com";

/// How the adapter makes sure an unpaid order is never captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoidMode {
    /// `POST /v2/checkout/orders/{id}/void` (our sandbox's extension).
    Endpoint,
    /// Check the order and abandon it: PayPal has no void for intent-CAPTURE
    /// orders; unapproved ones expire on their own and no money moves until
    /// a capture the shop will never send.
    Abandon,
}

/// Where and as whom the adapter talks to the gateway.
#[derive(Debug, Clone)]
pub struct PayPalSettings {
    /// Base URL, no trailing slash: `http://127.0.0.1:8090` (our sandbox) or
    /// [`PAYPAL_SANDBOX_URL`].
    pub base_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: Secret,
    /// Per-request timeout; a mutating call that exceeds it has an unknown
    /// outcome.
    pub timeout: Duration,
    /// How [`CheckoutGateway::void`] works against this gateway.
    pub void_mode: VoidMode,
}

impl PayPalSettings {
    /// Settings for our payments sandbox at `base_url` with its default
    /// credentials (`sandbox-client` / `sandbox-secret`).
    pub fn sandbox(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            client_id: "sandbox-client".to_string(),
            client_secret: Secret::new("sandbox-secret"),
            timeout: Duration::from_secs(10),
            void_mode: VoidMode::Endpoint,
        }
    }

    /// Settings for the gateway at `base_url` (a trailing `/` is dropped):
    /// the sandbox's credentials until told otherwise, and the void mode
    /// that gateway supports, [`VoidMode::Abandon`] for `*.paypal.com`.
    pub fn at(base_url: &str) -> Self {
        let mut s = Self::sandbox(base_url.trim_end_matches('/'));
        if s.base_url.contains(".paypal.com") {
            s.void_mode = VoidMode::Abandon;
        }
        s
    }
}

/// The longest token lifetime believed (PayPal's are about 9 hours).
const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The HTTP client could not be built (e.g. no TLS backend).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the payment gateway's HTTP client")]
pub struct BuildError(#[from] reqwest::Error);

/// A cached bearer token.
struct Token {
    value: String,
    /// Renew from here on: a margin before the gateway's expiry, so a token
    /// never expires in flight.
    renew_at: Instant,
}

/// The HTTP adapter. Cheap to share behind an `Arc`; one token for all calls.
pub struct PayPalGateway {
    settings: PayPalSettings,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

impl fmt::Debug for PayPalGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalGateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One HTTP answer, read to the end.
struct Answer {
    status: StatusCode,
    /// Kept as bytes: whether it is an order or an error depends on `status`.
    body: Vec<u8>,
}

impl PayPalGateway {
    /// An adapter for `settings`. Fails only if the HTTP client cannot be
    /// built.
    pub fn new(settings: PayPalSettings) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()?;
        Ok(Self {
            settings,
            http,
            token: Mutex::new(None),
        })
    }

    /// The settings it was built with.
    pub fn settings(&self) -> &PayPalSettings {
        &self.settings
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url.trim_end_matches('/'))
    }

    /// The cached token, or a fresh one. The lock is held across the fetch
    /// so that concurrent calls share one token request.
    async fn token(&self) -> Result<String, CheckoutError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        const OP: &str = "oauth2 token";
        let response = self
            .http
            .post(self.url("/v1/oauth2/token"))
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.client_secret.expose()),
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            // Fetching a token changes nothing: any failure is transient.
            .map_err(|e| CheckoutError::Transient {
                operation: OP,
                detail: describe(&e),
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(CheckoutError::Unauthorized);
        }
        if !status.is_success() {
            return Err(CheckoutError::Transient {
                operation: OP,
                detail: format!("HTTP {status}"),
            });
        }
        let body: TokenBody = response.json().await.map_err(|e| CheckoutError::Protocol {
            operation: OP,
            detail: e.to_string(),
        })?;
        // Capped: the lifetime is the gateway's word, and an absurd one must
        // neither overflow the clock nor pin a token forever.
        let lifetime = Duration::from_secs(body.expires_in.min(MAX_TOKEN_LIFETIME_SECS));
        // Renew a minute early (or halfway, for short-lived tokens).
        let margin = Duration::from_secs(60).min(lifetime / 2);
        *cached = Some(Token {
            value: body.access_token.clone(),
            renew_at: Instant::now() + lifetime - margin,
        });
        Ok(body.access_token)
    }

    /// Sends one API call. `key` is the `PayPal-Request-Id` of a mutating
    /// call; its presence is what turns a lost answer into an unknown
    /// outcome rather than a transient failure.
    ///
    /// One span per call (the token fetch inside it), its W3C trace context
    /// sent along as `traceparent`.
    #[tracing::instrument(
        name = "gateway",
        skip_all,
        fields(otel.name = operation, otel.kind = "client", http.request.method = %method)
    )]
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        key: Option<String>,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, CheckoutError> {
        let token = self.token().await?;
        let mutating = key.is_some();
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("Prefer", "return=representation");
        for (name, value) in ordersaga_runtime::telemetry::trace_context() {
            request = request.header(name, value);
        }
        if let Some(key) = key {
            request = request.header("PayPal-Request-Id", key);
        }
        request = match body {
            Some(b) => request.json(&b),
            // PayPal wants a JSON content type even on empty POSTs.
            None => request.header("Content-Type", "application/json"),
        };
        let lost = |detail: String| {
            if mutating {
                CheckoutError::OutcomeUnknown { operation, detail }
            } else {
                CheckoutError::Transient { operation, detail }
            }
        };
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                // The connection was never made: the gateway saw nothing.
                CheckoutError::Transient {
                    operation,
                    detail: describe(&e),
                }
            } else {
                lost(describe(&e))
            }
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| lost(describe(&e)))?;
        if status.is_server_error() {
            return Err(lost(format!("HTTP {status}")));
        }
        if status == StatusCode::UNAUTHORIZED {
            // A revoked or expired token: forget it so the retry fetches one.
            *self.token.lock().await = None;
            return Err(CheckoutError::Transient {
                operation,
                detail: "access token refused".to_string(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(CheckoutError::Transient {
                operation,
                detail: "rate limited".to_string(),
            });
        }
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        operation: &'static str,
        answer: &Answer,
    ) -> Result<T, CheckoutError> {
        serde_json::from_slice(&answer.body).map_err(|e| CheckoutError::Protocol {
            operation,
            detail: format!("HTTP {}: {e}", answer.status),
        })
    }

    /// A 4xx answer as an error.
    fn refusal(operation: &'static str, what: &str, answer: &Answer) -> CheckoutError {
        let body: ErrorBody = serde_json::from_slice(&answer.body).unwrap_or_default();
        let issue = body.details.into_iter().next().map(|d| d.issue);
        if answer.status == StatusCode::NOT_FOUND {
            return CheckoutError::NotFound {
                operation,
                what: what.to_string(),
            };
        }
        CheckoutError::Rejected {
            operation,
            status: answer.status.as_u16(),
            name: body.name,
            issue,
        }
    }

    async fn order(
        &self,
        operation: &'static str,
        id: &GatewayOrderId,
    ) -> Result<OrderBody, CheckoutError> {
        let answer = self
            .call(
                operation,
                Method::GET,
                &format!("/v2/checkout/orders/{}", path_segment(id.as_str())),
                None,
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(Self::refusal(operation, &format!("order {id}"), &answer));
        }
        Self::parse(operation, &answer)
    }
}

/// Gateway ids are alphanumeric; anything else is refused rather than
/// allowed to reshape the request path.
fn path_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

/// The error and its causes on one line (reqwest hides the useful part,
/// e.g. "operation timed out", in the source chain).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn capture_outcome(order: &OrderBody) -> Option<CaptureOutcome> {
    order.capture().map(|c| match c.status {
        CaptureStatus::Declined | CaptureStatus::Failed => CaptureOutcome::Declined {
            capture_id: Some(CaptureId::new(c.id.clone())),
            reason: c
                .status_details
                .as_ref()
                .and_then(|d| d.reason.clone())
                .unwrap_or_else(|| "DECLINED".to_string()),
        },
        _ => CaptureOutcome::Completed {
            capture_id: CaptureId::new(c.id.clone()),
        },
    })
}

#[async_trait]
impl CheckoutGateway for PayPalGateway {
    async fn create_order(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutOrder, CheckoutError> {
        const OP: &str = "create order";
        let txn = request.transaction_id.to_string();
        let mut context = json!({
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
        });
        if let Some(url) = &request.return_url {
            context["return_url"] = json!(url);
        }
        if let Some(url) = &request.cancel_url {
            context["cancel_url"] = json!(url);
        }
        let mut unit = json!({
            "reference_id": "default",
            "custom_id": txn,
            "invoice_id": txn,
            "amount": {
                "currency_code": request.amount.currency.as_str(),
                "value": request.amount.to_decimal(),
            },
        });
        if let Some(d) = &request.description {
            unit["description"] = json!(d);
        }
        let mut body = json!({
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "application_context": context,
        });
        if let Some(email) = &request.payer_email {
            body["payer"] = json!({ "email_address": email });
        }
        let answer = self
            .call(
                OP,
                Method::POST,
                "/v2/checkout/orders",
                Some(request_id(&request.transaction_id, Operation::Create)),
                Some(body),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(Self::refusal(OP, "order", &answer));
        }
        let order: OrderBody = Self::parse(OP, &answer)?;
        let approve_url = order
            .links
            .iter()
            .find(|l| l.rel == "approve" || l.rel == "payer-action")
            .map(|l| l.href.clone())
            .ok_or_else(|| CheckoutError::Protocol {
                operation: OP,
                detail: "the order has no approve link".to_string(),
            })?;
        Ok(CheckoutOrder {
            id: GatewayOrderId::new(order.id),
            approve_url,
            status: order.status,
        })
    }

    async fn get_order(&self, id: &GatewayOrderId) -> Result<OrderSnapshot, CheckoutError> {
        Ok(self.order("get order", id).await?.snapshot())
    }

    async fn capture(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<CaptureOutcome, CheckoutError> {
        const OP: &str = "capture";
        let answer = self
            .call(
                OP,
                Method::POST,
                &format!("/v2/checkout/orders/{}/capture", path_segment(id.as_str())),
                Some(request_id(transaction_id, Operation::Capture)),
                None,
            )
            .await?;
        if answer.status.is_success() {
            let order: OrderBody = Self::parse(OP, &answer)?;
            return capture_outcome(&order).ok_or_else(|| CheckoutError::Protocol {
                operation: OP,
                detail: "a successful capture without a capture".to_string(),
            });
        }
        let refusal = Self::refusal(OP, &format!("order {id}"), &answer);
        match refusal.issue() {
            // Captured before under another key: report that capture.
            Some("ORDER_ALREADY_CAPTURED") => {
                let order = self.order(OP, id).await?;
                capture_outcome(&order).ok_or(refusal)
            }
            // The buyer's funding source was refused at capture.
            Some(issue @ ("INSTRUMENT_DECLINED" | "TRANSACTION_REFUSED")) => {
                Ok(CaptureOutcome::Declined {
                    capture_id: None,
                    reason: issue.to_string(),
                })
            }
            _ => Err(refusal),
        }
    }

    async fn refund(
        &self,
        capture_id: &CaptureId,
        transaction_id: &TransactionId,
    ) -> Result<RefundOutcome, CheckoutError> {
        const OP: &str = "refund";
        let answer = self
            .call(
                OP,
                Method::POST,
                &format!(
                    "/v2/payments/captures/{}/refund",
                    path_segment(capture_id.as_str())
                ),
                Some(request_id(transaction_id, Operation::Refund)),
                // An empty body refunds the capture in full.
                Some(json!({})),
            )
            .await?;
        if answer.status.is_success() {
            let refund: RefundBody = Self::parse(OP, &answer)?;
            return Ok(RefundOutcome::Refunded {
                refund_id: refund.id,
            });
        }
        let refusal = Self::refusal(OP, &format!("capture {capture_id}"), &answer);
        match refusal.issue() {
            Some("CAPTURE_FULLY_REFUNDED") => Ok(RefundOutcome::AlreadyRefunded),
            _ => Err(refusal),
        }
    }

    async fn refund_part(
        &self,
        capture_id: &CaptureId,
        transaction_id: &TransactionId,
        amount: &Money,
        key: &str,
    ) -> Result<RefundOutcome, CheckoutError> {
        const OP: &str = "partial refund";
        let answer = self
            .call(
                OP,
                Method::POST,
                &format!(
                    "/v2/payments/captures/{}/refund",
                    path_segment(capture_id.as_str())
                ),
                Some(format!(
                    "{}-{key}",
                    request_id(transaction_id, Operation::PartialRefund)
                )),
                Some(json!({"amount": {
                    "value": amount.to_decimal(),
                    "currency_code": amount.currency.as_str(),
                }})),
            )
            .await?;
        if answer.status.is_success() {
            let refund: RefundBody = Self::parse(OP, &answer)?;
            return Ok(RefundOutcome::Refunded {
                refund_id: refund.id,
            });
        }
        let refusal = Self::refusal(OP, &format!("capture {capture_id}"), &answer);
        match refusal.issue() {
            Some("CAPTURE_FULLY_REFUNDED") => Ok(RefundOutcome::AlreadyRefunded),
            _ => Err(refusal),
        }
    }

    async fn void(
        &self,
        id: &GatewayOrderId,
        transaction_id: &TransactionId,
    ) -> Result<VoidOutcome, CheckoutError> {
        const OP: &str = "void";
        if self.settings.void_mode == VoidMode::Abandon {
            let order = self.order(OP, id).await?;
            return match order.status {
                CheckoutStatus::Completed => Err(CheckoutError::Rejected {
                    operation: OP,
                    status: 422,
                    name: "UNPROCESSABLE_ENTITY".to_string(),
                    issue: Some("ORDER_ALREADY_CAPTURED".to_string()),
                }),
                CheckoutStatus::Voided => Ok(VoidOutcome::Voided),
                _ => Ok(VoidOutcome::Abandoned),
            };
        }
        let answer = self
            .call(
                OP,
                Method::POST,
                &format!("/v2/checkout/orders/{}/void", path_segment(id.as_str())),
                Some(request_id(transaction_id, Operation::Void)),
                None,
            )
            .await?;
        if answer.status.is_success() {
            return Ok(VoidOutcome::Voided);
        }
        Err(Self::refusal(OP, &format!("order {id}"), &answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordersaga_domain::{Currency, Money};

    #[test]
    fn amounts_are_decimal_strings_by_the_currencys_exponent() {
        let c = |code| Currency::parse(code).unwrap();
        assert_eq!(Money::new(1234, c("EUR")).to_decimal(), "12.34");
        assert_eq!(Money::new(5, c("EUR")).to_decimal(), "0.05");
        assert_eq!(Money::new(100_000, c("EUR")).to_decimal(), "1000.00");
        assert_eq!(Money::new(1000, c("JPY")).to_decimal(), "1000");
        assert_eq!(Money::new(1000, c("BHD")).to_decimal(), "1.000");
    }

    #[test]
    fn ids_cannot_reshape_paths() {
        assert_eq!(path_segment("5O190127TN364715T"), "5O190127TN364715T");
        assert_eq!(path_segment("../../v1/oauth2"), "v1oauth2");
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = PayPalSettings::sandbox("http://x");
        assert!(!format!("{s:?}").contains("sandbox-secret"));
    }
}
