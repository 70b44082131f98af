//! Partial availability (`partial-availability-v1`): when some lines of a
//! paid order cannot be served, the shop's [`PartialAvailability`] policy
//! decides. `fail` keeps the all-or-nothing rule (`OUT_OF_STOCK`, a full
//! refund); `ask` (the default) proposes an [`Amendment`]: the lines that
//! can be served are deducted (held for the order while it waits), the
//! order becomes `ACTION_REQUIRED`, and the customer accepts (the missing
//! lines' amount is refunded, the rest ships) or cancels; the deadline
//! passing is a cancel.
//!
//! A product is served whole or not at all: a line whose product the
//! warehouses together hold too little of is missing in full (no partial
//! quantities are offered), so the refund is exactly the missing lines'
//! price.

use serde::{Deserialize, Serialize};

use crate::{Money, OrderInput, OrderLine, Sku};

text_enum!(
    /// What the shop does with a paid order some lines of which cannot be
    /// served (`ORDERSAGA_PARTIAL_AVAILABILITY`).
    PartialAvailability {
        /// Propose the amended order and wait for the customer's choice.
        Ask => "ask",
        /// Fail the order and refund it in full, as before.
        Fail => "fail",
    }
);

/// The default policy: ask the customer.
impl Default for PartialAvailability {
    fn default() -> Self {
        Self::Ask
    }
}

/// The default time a customer has to decide, seconds (24 h).
pub const DEFAULT_AMENDMENT_DEADLINE_SECS: u64 = 24 * 3600;

/// The proposed amendment of an order: what can be served, what cannot,
/// and what would be refunded. Part of `ProcessInventory`'s recorded result
/// (with the deadline the worker's setting gave), so a replay waits for the
/// same deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amendment {
    /// The lines that can be served (their stock is held for the order).
    pub lines: Vec<OrderLine>,
    /// The lines that cannot, in full.
    pub missing: Vec<OrderLine>,
    /// The missing lines' amount: refunded on acceptance.
    pub refund: Money,
    /// How long the customer has to decide, seconds.
    pub deadline_secs: u64,
}

impl Amendment {
    /// Splits `lines` into those whose product is not `short` and those
    /// whose product is; `None` unless both are non-empty (nothing short:
    /// no amendment; everything short: nothing to offer).
    pub fn propose(lines: &[OrderLine], short: &[Sku], deadline_secs: u64) -> Option<Self> {
        let (missing, kept): (Vec<OrderLine>, Vec<OrderLine>) =
            lines.iter().cloned().partition(|l| short.contains(&l.sku));
        if missing.is_empty() || kept.is_empty() {
            return None;
        }
        let currency = lines.first()?.unit_price.currency;
        let minor = missing
            .iter()
            .map(|l| l.unit_price.minor.saturating_mul(l.quantity))
            .fold(0i64, i64::saturating_add);
        Some(Self {
            lines: kept,
            missing,
            refund: Money { minor, currency },
            deadline_secs,
        })
    }
}

text_enum!(
    /// Where a stored amendment is.
    AmendmentStatus {
        /// Waiting for the customer.
        Proposed => "PROPOSED",
        /// Accepted: the missing lines were refunded.
        Accepted => "ACCEPTED",
        /// Cancelled by the customer, or the deadline passed: the order
        /// failed and was refunded in full.
        Declined => "DECLINED",
    }
);

impl OrderInput {
    /// The order as amended: the served lines and their total.
    pub fn amended(&self, amendment: &Amendment) -> OrderInput {
        let mut order = self.clone();
        order.lines = amendment.lines.clone();
        order.total = Money {
            minor: self.total.minor.saturating_sub(amendment.refund.minor),
            currency: self.total.currency,
        };
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn line(sku: &str, quantity: i64, minor: i64) -> OrderLine {
        OrderLine {
            sku: Sku::parse(sku).unwrap(),
            quantity,
            unit_price: Money {
                minor,
                currency: Currency::parse("EUR").unwrap(),
            },
        }
    }

    #[test]
    fn the_refund_is_exactly_the_missing_lines() {
        let lines = [line("MUG", 2, 1_000), line("CAP", 3, 250)];
        let short = [Sku::parse("CAP").unwrap()];
        let a = Amendment::propose(&lines, &short, 60).unwrap();
        assert_eq!(a.lines, [line("MUG", 2, 1_000)]);
        assert_eq!(a.missing, [line("CAP", 3, 250)]);
        assert_eq!(a.refund.minor, 750);
        assert_eq!(a.deadline_secs, 60);
    }

    #[test]
    fn nothing_or_everything_short_is_no_amendment() {
        let lines = [line("MUG", 2, 1_000)];
        assert_eq!(Amendment::propose(&lines, &[], 60), None);
        assert_eq!(
            Amendment::propose(&lines, &[Sku::parse("MUG").unwrap()], 60),
            None
        );
    }

    #[test]
    fn policy_reads_ask_and_fail() {
        assert_eq!("ask".parse(), Ok(PartialAvailability::Ask));
        assert_eq!("fail".parse(), Ok(PartialAvailability::Fail));
        assert_eq!(PartialAvailability::default(), PartialAvailability::Ask);
    }
}
