//! `PlaceOrder`'s rate limit per customer (governor's GCRA, kept in this
//! process's memory): a customer gets a burst of orders, then a steady
//! rate; beyond it `RESOURCE_EXHAUSTED` (`429`), before anything is
//! priced, stored or started. Several API processes each apply it.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ordersaga_domain::CustomerId;

use crate::error::ApiError;

/// Customers remembered before the idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// How many orders a customer may place: `per_minute` steadily, after a
/// burst of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// Orders per minute; 0 turns the limit off.
    pub per_minute: u32,
    /// Orders that may come at once.
    pub burst: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            per_minute: 30,
            burst: 10,
        }
    }
}

/// The limiter; cheap to clone (shared state).
#[derive(Clone)]
pub struct PlaceOrderLimit(Option<Arc<DefaultKeyedRateLimiter<CustomerId>>>);

impl PlaceOrderLimit {
    /// A limiter for `settings` (none when `per_minute` is 0).
    pub fn new(settings: RateSettings) -> Self {
        let Some(rate) = NonZeroU32::new(settings.per_minute) else {
            return Self(None);
        };
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(rate).allow_burst(burst);
        Self(Some(Arc::new(RateLimiter::keyed(quota))))
    }

    /// Takes one order from `customer`'s allowance, or refuses it.
    pub(crate) fn check(&self, customer: &CustomerId) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        if limiter.len() > MAX_TRACKED {
            limiter.retain_recent();
        }
        limiter.check_key(customer).map_err(|_| {
            ApiError::ResourceExhausted(format!(
                "customer {customer} is placing orders too fast; retry later"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_customer_waits_and_others_do_not() {
        let limit = PlaceOrderLimit::new(RateSettings {
            per_minute: 1,
            burst: 3,
        });
        let alice = CustomerId::parse("alice").unwrap();
        for _ in 0..3 {
            limit.check(&alice).unwrap();
        }
        assert!(matches!(
            limit.check(&alice),
            Err(ApiError::ResourceExhausted(_))
        ));
        limit.check(&CustomerId::parse("bob").unwrap()).unwrap();
        let off = PlaceOrderLimit::new(RateSettings {
            per_minute: 0,
            burst: 0,
        });
        for _ in 0..100 {
            off.check(&alice).unwrap();
        }
    }
}
