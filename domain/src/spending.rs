//! The spending limit against fraud: a manager (merchant or operator) sets,
//! changes or removes a cumulative limit per customer (default none), and
//! an order that would take the customer over it fails before any charge
//! (`SPENDING_LIMIT_EXCEEDED`).
//!
//! *Cumulative* counts every order of the customer that passed the check
//! and has not failed: orders in flight (reserved by the saga's
//! `ReserveSpending` step before the payment) and confirmed ones, in the
//! limit's currency. A failed order's reservation is released by the
//! saga's compensation (`ReleaseSpending`), so it stops counting. Orders
//! reserve whether or not a limit is set, so a limit set later counts what
//! the customer already spent (from the first saga with
//! `spending-limit-v1` on). There are no exchange rates in the shop: an
//! order in another currency than the limit's is refused while the limit
//! stands.

use crate::{FailureReason, Money};

/// Whether an order of `requested` fits under `limit` when `spent` (same
/// currency as the limit) already counts against it. Reaching the limit
/// exactly is allowed; going over it, or paying in another currency than
/// the limit's, is [`FailureReason::SpendingLimitExceeded`].
pub fn check_limit(limit: Money, spent: Money, requested: Money) -> Result<(), FailureReason> {
    let exceeded = || FailureReason::SpendingLimitExceeded {
        limit,
        spent,
        requested,
    };
    match spent.plus(requested) {
        Ok(total) if total.currency == limit.currency && total.minor <= limit.minor => Ok(()),
        // Over, in another currency, or past 63 bits.
        _ => Err(exceeded()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    #[test]
    fn under_and_at_the_limit_pass_over_it_fails() {
        assert_eq!(check_limit(eur(10_000), eur(4_000), eur(5_999)), Ok(()));
        assert_eq!(check_limit(eur(10_000), eur(4_000), eur(6_000)), Ok(()));
        let over = check_limit(eur(10_000), eur(4_000), eur(6_001)).unwrap_err();
        assert_eq!(over.code(), "SPENDING_LIMIT_EXCEEDED");
        assert_eq!(
            over.to_string(),
            "spending limit exceeded: 60.01 EUR on top of 40.00 EUR already spent is over \
             the limit of 100.00 EUR"
        );
        // A zero limit lets nothing through.
        assert!(check_limit(eur(0), eur(0), eur(1)).is_err());
    }

    #[test]
    fn another_currency_or_an_overflow_is_refused() {
        let usd = Money::new(1, Currency::parse("USD").unwrap());
        assert!(check_limit(eur(10_000), eur(0), usd).is_err());
        assert!(check_limit(eur(i64::MAX), eur(i64::MAX), eur(1)).is_err());
    }
}
