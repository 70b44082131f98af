//! Tokens in tests: every stack's API verifies HS256 tokens signed with
//! [`TEST_AUTH_SECRET`]; [`token`] mints one for any role and subject, and
//! the clients here send one with every call ([`Bearer`]).

use std::time::Duration;

use ordersaga_proto::v1::catalog_service_client::CatalogServiceClient;
use ordersaga_proto::v1::order_service_client::OrderServiceClient;
use ordersaga_runtime::Secret;
use ordersaga_runtime::auth::{AuthSettings, Claims, Role};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The HS256 secret of every test API.
pub const TEST_AUTH_SECRET: &str = "ordersaga-tests-hs256-secret-of-at-least-32-bytes";

/// The token settings of every test API.
pub fn test_auth() -> AuthSettings {
    AuthSettings::hs256(Secret::new(TEST_AUTH_SECRET))
}

/// A token for `subject` as `role`, valid for an hour.
pub fn token(role: Role, subject: &str) -> String {
    let claims = Claims::new(&test_auth(), subject, role, Duration::from_secs(3600));
    match claims.sign_hs256(&Secret::new(TEST_AUTH_SECRET)) {
        Ok(token) => token,
        // HS256 over serde-serialisable claims cannot fail.
        Err(e) => unreachable!("signing a test token: {e}"),
    }
}

/// The operator's token: may do anything (the harness's default).
pub fn operator_token() -> String {
    token(Role::Operator, "test-operator")
}

/// Sends `authorization: Bearer <token>` with every gRPC call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// The header for `token` (a JWT is ASCII; anything else is sent empty,
    /// which the API refuses as it should).
    pub fn new(token: &str) -> Self {
        Self(
            format!("Bearer {token}")
                .parse()
                .unwrap_or_else(|_| MetadataValue::from_static("")),
        )
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// An `OrderService` client sending a token.
pub type OrdersClient = OrderServiceClient<InterceptedService<Channel, Bearer>>;
/// A `CatalogService` client sending a token.
pub type CatalogClient = CatalogServiceClient<InterceptedService<Channel, Bearer>>;

/// An HTTP client sending `Authorization: Bearer <token>` with every request.
pub fn http_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}
