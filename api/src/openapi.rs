//! The HTTP API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! Nothing here lists routes: [`crate::http::router`] registers every
//! operation through `utoipa-axum`, which builds the router and the
//! document's paths from the same `#[utoipa::path]` handlers, so the two
//! cannot drift. This module adds what is the document's alone: its info,
//! the `bearer` security scheme, the error schema, the error answers every
//! operation names ([`responses`]) and the schemas of the domain's text
//! enums.

use std::fmt::Display;

use ordersaga_domain::{OrderStatus, PaymentStatus, ShipmentStatus};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, ErrorDetail};

/// The name of the bearer token scheme operations require (the
/// handlers' `security(("bearer" = []))` spell it out).
pub const BEARER: &str = "bearer";

/// The document's fixed part; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ordersaga",
        description = "The shop's HTTP/JSON API: orders, catalog, stock, shipments, operator \
                       actions and the payment gateway's webhook. Every error answer is \
                       `{\"error\": {\"code\", \"message\"}}`. Operations with the `bearer` \
                       scheme take `Authorization: Bearer <JWT>`; what each role may do is in \
                       docs/security.md."
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&BearerScheme),
    tags(
        (name = "orders", description = "Placing, reading and cancelling orders"),
        (name = "operators", description = "Orders that need an operator"),
        (name = "catalog", description = "Products, stock receipts, low-stock alerts, ratings"),
        (name = "shipping", description = "Shipments: the queue, the courier's dispatch and delivery"),
        (name = "customers", description = "Customers' spending limits"),
        (name = "payments", description = "The payment gateway's signed webhook"),
        (name = "service", description = "Health and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (a JWT in `Authorization`).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT naming the caller's role (customer, merchant, operator, courier)",
                    ))
                    .build(),
            ),
        );
    }
}

fn text_enum<T: Display>(all: &[T], description: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(all.iter().map(ToString::to_string)))
            .description(Some(description))
            .build(),
    )
}

fn or_null(schema: Schema) -> RefOr<Schema> {
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(schema)
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    ))
}

/// The schema of an [`OrderStatus`].
pub fn order_status() -> Schema {
    text_enum(OrderStatus::ALL, "An order's status")
}

/// The schema of a payment status, `null` before the payment began.
pub fn payment_status() -> RefOr<Schema> {
    or_null(text_enum(PaymentStatus::ALL, "The payment's status"))
}

/// The schema of a shipment's status.
pub fn shipment_status() -> Schema {
    text_enum(ShipmentStatus::ALL, "Where the shipment is")
}

/// The schema of an order's fulfilment status, `null` before it has a
/// shipment.
pub fn fulfilment_status() -> RefOr<Schema> {
    or_null(text_enum(
        &["REQUESTED", "DISPATCHED", "COMPLETED"],
        "The confirmed order's fulfilment: the least advanced shipment's",
    ))
}

/// The error answers operations name in `responses(...)`: each one status,
/// with the [`ErrorBody`] schema.
pub mod responses {
    use utoipa::IntoResponses;

    use crate::error::ErrorBody;

    /// A malformed request (body, path, query or header); nothing was
    /// written.
    #[derive(IntoResponses)]
    #[response(status = 400)]
    pub struct BadRequest(pub ErrorBody);

    /// No valid bearer token (or, on the webhook, no valid signature);
    /// nothing was written.
    #[derive(IntoResponses)]
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    pub struct Unauthenticated(pub ErrorBody);

    /// The caller's role may not do this; nothing was written.
    #[derive(IntoResponses)]
    #[response(status = 403)]
    pub struct Forbidden(pub ErrorBody);

    /// No such order or product (another customer's order is not found
    /// either).
    #[derive(IntoResponses)]
    #[response(status = 404)]
    pub struct NotFound(pub ErrorBody);

    /// It exists already (`ALREADY_EXISTS`), or the state does not allow it
    /// (`FAILED_PRECONDITION`).
    #[derive(IntoResponses)]
    #[response(status = 409)]
    pub struct Conflict(pub ErrorBody);

    /// The body exceeds 64 KiB.
    #[derive(IntoResponses)]
    #[response(status = 413)]
    pub struct TooLarge(pub ErrorBody);

    /// The request target exceeds 8 KiB.
    #[derive(IntoResponses)]
    #[response(status = 414)]
    pub struct UriTooLong(pub ErrorBody);

    /// The body is not `application/json`.
    #[derive(IntoResponses)]
    #[response(status = 415)]
    pub struct UnsupportedMediaType(pub ErrorBody);

    /// Too many orders from this customer; retry later.
    #[derive(IntoResponses)]
    #[response(status = 429)]
    pub struct TooManyRequests(pub ErrorBody);

    /// A dependency (database, Temporal) failed; the message is opaque.
    #[derive(IntoResponses)]
    #[response(status = 500)]
    pub struct Internal(pub ErrorBody);

    /// The database does not answer.
    #[derive(IntoResponses)]
    #[response(status = 503)]
    pub struct Unavailable(pub ErrorBody);
}
