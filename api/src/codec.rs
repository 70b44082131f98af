//! The codec server: Temporal's remote codec protocol on the API's HTTP
//! port, so that the Temporal UI (and `temporal --codec-endpoint`) show
//! operators the shop's encrypted payloads in clear, and nobody else.
//!
//! - `POST /codec/decode`, `POST /codec/encode`: a body
//!   `{"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}`
//!   (the proto3 JSON of `Payloads`: bytes as base64), answered in the
//!   same shape, run through the process's key ring
//!   ([`ordersaga_runtime::codec`]). Payloads that are not ours pass
//!   through.
//! - The caller must hold an operator's bearer token:
//!   `Authorization: Bearer <token>` (the UI sends the signed-in user's
//!   token when its codec setting "pass access token" is on). A UI that
//!   cannot send one (the dev server's has no sign-in) is given an endpoint
//!   with the token in it: `/codec/bearer/<token>`, to which it appends
//!   `/decode`. Anything else is `401 UNAUTHENTICATED`, a valid token of
//!   another role included (the codec server tells nothing about tokens).
//! - CORS for the UI's origins (`ORDERSAGA_CODEC_CORS_ORIGINS`), preflight
//!   included; the UI calls from the browser.
//! - Requests run in a `codec` span that names neither the path (it may
//!   hold a token) nor any payload.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ordersaga_runtime::codec::KeyRing;
use serde::{Deserialize, Serialize};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument as _;

use crate::error::ApiError;

/// Largest body accepted: a history's worth of payloads the UI decodes at
/// once (Temporal refuses payloads over 2 MB).
pub const MAX_CODEC_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Whether an `Authorization` header value is an operator's bearer token
/// (the API's authenticator; tests give their own).
pub type OperatorCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// What the codec routes need.
#[derive(Clone)]
pub struct CodecServer {
    ring: Arc<KeyRing>,
    is_operator: OperatorCheck,
}

/// `Payloads` in proto3 JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PayloadsJson {
    /// The payloads.
    #[serde(default)]
    pub payloads: Vec<PayloadJson>,
}

/// One `Payload` in proto3 JSON: metadata values and data in base64.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PayloadJson {
    /// Metadata, each value base64.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The data, base64.
    #[serde(default)]
    pub data: String,
}

/// proto3 JSON accepts either base64 alphabet.
fn bytes(text: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| ApiError::InvalidArgument("payload field is not base64".to_string()))
}

impl PayloadJson {
    fn into_payload(self) -> Result<Payload, ApiError> {
        Ok(Payload {
            metadata: self
                .metadata
                .into_iter()
                .map(|(k, v)| Ok((k, bytes(&v)?)))
                .collect::<Result<_, ApiError>>()?,
            data: bytes(&self.data)?,
            external_payloads: Vec::new(),
        })
    }

    fn from_payload(payload: Payload) -> Self {
        Self {
            metadata: payload
                .metadata
                .into_iter()
                .map(|(k, v)| (k, STANDARD.encode(v)))
                .collect(),
            data: STANDARD.encode(payload.data),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Encode,
    Decode,
}

impl CodecServer {
    /// A codec server over `ring`, for the callers `is_operator` accepts.
    pub fn new(ring: Arc<KeyRing>, is_operator: OperatorCheck) -> Self {
        Self { ring, is_operator }
    }

    /// The `/codec` routes with CORS for `origins`.
    pub fn router(self, origins: &[String]) -> Router {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-namespace"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600));
        Router::new()
            .route("/codec/encode", post(encode))
            .route("/codec/decode", post(decode))
            .route("/codec/bearer/{token}/encode", post(encode_with_token))
            .route("/codec/bearer/{token}/decode", post(decode_with_token))
            .layer(DefaultBodyLimit::max(MAX_CODEC_BODY_BYTES))
            .layer(cors)
            .with_state(self)
    }

    /// Runs `op` over `body` if `authorization` is an operator's.
    async fn answer(
        &self,
        op: Op,
        authorization: Option<&str>,
        body: Result<Json<PayloadsJson>, JsonRejection>,
    ) -> Result<Json<PayloadsJson>, ApiError> {
        let span = tracing::info_span!("codec", op = ?op);
        async move {
            if !(self.is_operator)(authorization) {
                return Err(ApiError::Unauthenticated(
                    "the codec server needs an operator's bearer token".to_string(),
                ));
            }
            let Json(body) = body.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
            let payloads = body
                .payloads
                .into_iter()
                .map(|p| {
                    let payload = p.into_payload()?;
                    let converted = match op {
                        Op::Encode => self.ring.encrypt(payload),
                        Op::Decode => self.ring.decrypt(payload),
                    };
                    converted
                        .map(PayloadJson::from_payload)
                        .map_err(|e| ApiError::InvalidArgument(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            tracing::debug!(payloads = payloads.len(), "answered");
            Ok(Json(PayloadsJson { payloads }))
        }
        .instrument(span)
        .await
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn encode(
    State(codec): State<CodecServer>,
    headers: HeaderMap,
    body: Result<Json<PayloadsJson>, JsonRejection>,
) -> Result<Json<PayloadsJson>, ApiError> {
    codec
        .answer(Op::Encode, authorization(&headers), body)
        .await
}

async fn decode(
    State(codec): State<CodecServer>,
    headers: HeaderMap,
    body: Result<Json<PayloadsJson>, JsonRejection>,
) -> Result<Json<PayloadsJson>, ApiError> {
    codec
        .answer(Op::Decode, authorization(&headers), body)
        .await
}

async fn encode_with_token(
    State(codec): State<CodecServer>,
    Path(token): Path<String>,
    body: Result<Json<PayloadsJson>, JsonRejection>,
) -> Result<Json<PayloadsJson>, ApiError> {
    let bearer = format!("Bearer {token}");
    codec.answer(Op::Encode, Some(&bearer), body).await
}

async fn decode_with_token(
    State(codec): State<CodecServer>,
    Path(token): Path<String>,
    body: Result<Json<PayloadsJson>, JsonRejection>,
) -> Result<Json<PayloadsJson>, ApiError> {
    let bearer = format!("Bearer {token}");
    codec.answer(Op::Decode, Some(&bearer), body).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use ordersaga_runtime::Secret;
    use ordersaga_runtime::codec::{ENCRYPTED_ENCODING, KEY_ID_METADATA};
    use tower::ServiceExt as _;

    use super::*;

    const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const UI: &str = "http://127.0.0.1:8233";

    fn router() -> Router {
        let ring = Arc::new(KeyRing::parse(&Secret::new(KEYS)).unwrap());
        let is_operator: OperatorCheck = Arc::new(|h| h == Some("Bearer op"));
        CodecServer::new(ring, is_operator).router(&[UI.to_string()])
    }

    fn body(data: &str) -> String {
        serde_json::json!({"payloads": [{
            "metadata": {"encoding": STANDARD.encode("json/plain")},
            "data": STANDARD.encode(data),
        }]})
        .to_string()
    }

    async fn call(uri: &str, auth: Option<&str>, body: String) -> (StatusCode, serde_json::Value) {
        let mut request = Request::post(uri).header("content-type", "application/json");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = router()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn metadata(answer: &serde_json::Value, key: &str) -> Vec<u8> {
        let value = answer["payloads"][0]["metadata"][key].as_str().unwrap();
        STANDARD.decode(value).unwrap()
    }

    #[tokio::test]
    async fn encode_then_decode_round_trips_for_an_operator() {
        let (status, sealed) = call("/codec/encode", Some("Bearer op"), body("\"a@b.c\"")).await;
        assert_eq!(status, StatusCode::OK, "{sealed}");
        assert_eq!(metadata(&sealed, "encoding"), ENCRYPTED_ENCODING.as_bytes());
        assert_eq!(metadata(&sealed, KEY_ID_METADATA), b"k1");
        let (status, plain) = call(
            "/codec/bearer/op/decode",
            None,
            serde_json::to_string(&sealed).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{plain}");
        assert_eq!(metadata(&plain, "encoding"), b"json/plain");
        let data = plain["payloads"][0]["data"].as_str().unwrap();
        assert_eq!(STANDARD.decode(data).unwrap(), b"\"a@b.c\"");
    }

    #[tokio::test]
    async fn anyone_else_gets_401_and_nothing_decoded() {
        for (uri, auth) in [
            ("/codec/decode", None),
            ("/codec/decode", Some("Bearer customer")),
            ("/codec/encode", Some("op")),
            ("/codec/bearer/customer/decode", None),
        ] {
            let (status, answer) = call(uri, auth, body("1")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
            assert_eq!(answer["error"]["code"], "UNAUTHENTICATED");
        }
    }

    #[tokio::test]
    async fn a_payload_it_cannot_decrypt_is_a_400() {
        let tampered = serde_json::json!({"payloads": [{
            "metadata": {"encoding": STANDARD.encode(ENCRYPTED_ENCODING),
                         KEY_ID_METADATA: STANDARD.encode("k9")},
            "data": STANDARD.encode("0123456789abcdef"),
        }]});
        let (status, answer) = call("/codec/decode", Some("Bearer op"), tampered.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer["error"]["message"].as_str().unwrap().contains("k9"));
    }

    #[tokio::test]
    async fn the_ui_origin_passes_the_preflight_and_others_do_not() {
        let preflight = |origin: &str| {
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/codec/decode")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,x-namespace",
                )
                .body(Body::empty())
                .unwrap()
        };
        let ok = router().oneshot(preflight(UI)).await.unwrap();
        assert!(ok.status().is_success(), "{:?}", ok.status());
        let allowed = ok.headers();
        assert_eq!(allowed["access-control-allow-origin"], UI);
        let headers = allowed["access-control-allow-headers"].to_str().unwrap();
        assert!(headers.contains("x-namespace") && headers.contains("authorization"));
        let other = router()
            .oneshot(preflight("http://evil.example"))
            .await
            .unwrap();
        assert!(!other.headers().contains_key("access-control-allow-origin"));
    }
}
