//! `PlaceOrder` idempotency keys: a key names one request, field for field,
//! as payment APIs treat them. The key is claimed with a fingerprint of the
//! validated request before the saga starts ([`ordersaga_store::IdempotencyKeys`]),
//! so the answer is the same whether or not a worker has stored the order
//! yet, and racing calls are settled by the database.

use ordersaga_domain::{
    CustomerId, EmailAddress, Money, OrderId, OrderInput, OrderLine, ShippingAddress, Sku,
};
use ordersaga_store::{Claimed, KeyClaim, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::service::{PlacedOrder, pending_link};

/// What to do with a `PlaceOrder` that carries a key.
pub(crate) enum KeyCheck {
    /// Start the saga (idempotently: a replay attaches to the running
    /// one) and answer `PENDING` with this total, the first request's.
    Start {
        /// The order the key names: the request's own (random) id when it
        /// is the first, the first request's on a replay.
        order_id: OrderId,
        /// The total the key's first request was answered with.
        first_total: Money,
    },
    /// The saga has stored the order: answer with it as it stands.
    Answer(Box<PlacedOrder>),
}

/// Claims `key` for this request, or finds it is a replay, or refuses it
/// (`409 FAILED_PRECONDITION`: the key belongs to another request).
pub(crate) async fn check_key(
    store: &Store,
    key: &str,
    input: &OrderInput,
) -> Result<KeyCheck, ApiError> {
    let claim = KeyClaim {
        customer_id: input.customer_id.clone(),
        key: key.to_string(),
        fingerprint: fingerprint(
            &input.customer_id,
            &input.lines,
            input.customer_email.as_ref(),
            input.shipping_address.as_ref(),
        )
        .map_err(ApiError::internal)?,
        order_id: input.order_id,
        total: input.total,
    };
    let (order_id, first_total) = match store
        .idempotency_keys()
        .claim(&claim)
        .await
        .map_err(ApiError::internal)?
    {
        Claimed::Conflict => return Err(reused()),
        Claimed::Replay { order_id, total } => (order_id, total),
        Claimed::First => (input.order_id, input.total),
    };
    let Some(existing) = store
        .orders()
        .get(&order_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(KeyCheck::Start {
            order_id,
            first_total,
        });
    };
    // Keys claimed before fingerprints were recorded (migration 0007)
    // have only the stored lines to be checked against.
    let same_lines = existing.lines.len() == input.lines.len()
        && existing
            .lines
            .iter()
            .zip(&input.lines)
            .all(|(a, b)| a.sku == b.sku && a.quantity == b.quantity);
    if !same_lines {
        return Err(reused());
    }
    Ok(KeyCheck::Answer(Box::new(PlacedOrder {
        order_id,
        transaction_id: existing.summary.transaction_id,
        status: existing.summary.status,
        total: existing.summary.total,
        workflow_id: order_id.workflow_id(),
        approval_url: pending_link(existing.payment.as_ref()),
    })))
}

fn reused() -> ApiError {
    ApiError::FailedPrecondition("idempotency_key was already used for a different request".into())
}

/// The request as the fingerprint sees it: every field the client sent,
/// after validation (so spelling that validation normalises away, such as
/// surrounding blanks, is the same request). Lines keep their order.
#[derive(Serialize)]
struct Canonical<'a> {
    /// Bumped if the canonical form ever changes, so old and new
    /// fingerprints never compare equal by accident.
    version: u8,
    customer_id: &'a str,
    lines: Vec<(&'a Sku, i64)>,
    customer_email: Option<&'a EmailAddress>,
    shipping_address: Option<&'a ShippingAddress>,
}

/// Hex SHA-256 of the canonical request.
pub(crate) fn fingerprint(
    customer_id: &CustomerId,
    lines: &[OrderLine],
    customer_email: Option<&EmailAddress>,
    shipping_address: Option<&ShippingAddress>,
) -> Result<String, serde_json::Error> {
    let canonical = Canonical {
        version: 1,
        customer_id: customer_id.as_str(),
        lines: lines.iter().map(|l| (&l.sku, l.quantity)).collect(),
        customer_email,
        shipping_address,
    };
    let body = serde_json::to_vec(&canonical)?;
    Ok(hex::encode(Sha256::digest(&body)))
}

#[cfg(test)]
mod tests {
    use ordersaga_domain::{Currency, Money};

    use super::*;

    fn parts(qty: i64, email: &str, line1: &str) -> String {
        let eur = Currency::parse("EUR").unwrap();
        let sku = Sku::parse("MUG-1").unwrap();
        let lines = [OrderLine {
            sku,
            quantity: qty,
            unit_price: Money::new(1_000, eur),
        }];
        let address = ShippingAddress {
            name: "A".into(),
            line1: line1.into(),
            line2: String::new(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
        };
        let customer = CustomerId::parse("erin").unwrap();
        let email = EmailAddress::parse(email).unwrap();
        fingerprint(&customer, &lines, Some(&email), Some(&address)).unwrap()
    }

    #[test]
    fn every_field_counts() {
        let base = parts(1, "a@example.com", "1 Street");
        assert_eq!(base, parts(1, "a@example.com", "1 Street"));
        assert_ne!(base, parts(2, "a@example.com", "1 Street"));
        assert_ne!(base, parts(1, "b@example.com", "1 Street"));
        assert_ne!(base, parts(1, "a@example.com", "2 Street"));
    }
}
