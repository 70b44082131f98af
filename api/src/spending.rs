//! The spending limit against fraud: a manager (merchant or operator)
//! sets, changes or removes a customer's cumulative limit
//! ([`OrderService::set_spending_limit`]) and reads it with what counts
//! against it ([`OrderService::get_spending_limit`]). The saga enforces it
//! (`ReserveSpending`, [`ordersaga_domain::spending`] says what counts).
//! Bad input (a negative limit, an unknown currency) is `INVALID_ARGUMENT`
//! and nothing is written.

use ordersaga_domain::{Currency, CustomerId, Money};
use ordersaga_runtime::auth::Principal;
use ordersaga_store::SpendingLimitRecord;

use crate::access::{STAFF, require};
use crate::error::{ApiError, invalid};
use crate::service::OrderService;

/// A limit as it arrives, before validation: minor units and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCommand {
    /// Minor units; 0 or more.
    pub minor_units: i64,
    /// ISO 4217 code.
    pub currency: String,
}

fn customer(id: &str) -> Result<CustomerId, ApiError> {
    if id.trim().is_empty() {
        return Err(invalid("customer_id is required"));
    }
    CustomerId::parse(id.trim()).map_err(|e| invalid(e.to_string()))
}

/// A validated limit: not negative, a currency with minor units, within
/// what the gateway takes.
fn limit(cmd: &LimitCommand) -> Result<Money, ApiError> {
    if cmd.minor_units < 0 {
        return Err(invalid("limit must be 0 or more"));
    }
    let currency = Currency::parse(&cmd.currency).map_err(|e| invalid(e.to_string()))?;
    let limit = Money::new(cmd.minor_units, currency);
    limit
        .check_gateway_limit()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(limit)
}

impl OrderService {
    /// `SetSpendingLimit`: sets or changes the customer's limit, or removes
    /// it (`None`). Staff only. Answers the limit and what counts against
    /// it.
    pub async fn set_spending_limit(
        &self,
        caller: &Principal,
        customer_id: &str,
        cmd: Option<LimitCommand>,
    ) -> Result<SpendingLimitRecord, ApiError> {
        require(caller, STAFF, "set spending limits")?;
        let customer = customer(customer_id)?;
        let limit = cmd.as_ref().map(limit).transpose()?;
        let record = self
            .store
            .spending()
            .set_limit(&customer, limit, &caller.subject)
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(customer_id = %customer, limit = ?limit.map(|l| l.to_string()), by = %caller.subject, "spending limit set");
        Ok(record)
    }

    /// `GetSpendingLimit`: the customer's limit (none by default) and what
    /// counts against it. Staff only.
    pub async fn get_spending_limit(
        &self,
        caller: &Principal,
        customer_id: &str,
    ) -> Result<SpendingLimitRecord, ApiError> {
        require(caller, STAFF, "read spending limits")?;
        let customer = customer(customer_id)?;
        self.store
            .spending()
            .limit(&customer)
            .await
            .map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_zero_or_more_in_a_real_currency() {
        let eur = |minor_units| LimitCommand {
            minor_units,
            currency: "EUR".into(),
        };
        assert_eq!(limit(&eur(0)).unwrap().minor, 0);
        assert_eq!(limit(&eur(10_000)).unwrap().to_string(), "100.00 EUR");
        assert!(matches!(limit(&eur(-1)), Err(ApiError::InvalidArgument(_))));
        let gold = LimitCommand {
            minor_units: 1,
            currency: "XAU".into(),
        };
        assert!(matches!(limit(&gold), Err(ApiError::InvalidArgument(_))));
        assert!(matches!(
            limit(&eur(i64::MAX)),
            Err(ApiError::InvalidArgument(_))
        ));
        assert!(matches!(customer(" "), Err(ApiError::InvalidArgument(_))));
    }
}
