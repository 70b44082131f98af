//! The product and inventory contexts' rules: the events a product's life
//! leaves ([`CatalogEvent`]), the `MonitorLowStock` crossing
//! ([`StockLevel::crossing`]) and who may rate a product ([`may_rate`]).
//!
//! Pure functions: the store applies them inside the transactions that
//! change stock and ratings.

use crate::OrderStatus;

text_enum!(
    /// The domain events of a product and its stock, stored per product
    /// with the time they happened.
    CatalogEvent {
        /// `CreateProduct`: the product exists, with no stock.
        ProductCreated => "ProductCreated",
        /// `CreateStockReceipt`: stock of the product went up.
        StockReceiptCreated => "StockReceiptCreated",
        /// `MonitorLowStock`: stock fell to or below the product's threshold.
        LowStockAlertTriggered => "LowStockAlertTriggered",
        /// `SubmitReviewRating`: a buyer rated the product.
        ReviewRatingSubmitted => "ReviewRatingSubmitted",
        /// The product's rating sum and count changed with a rating.
        ProductRatingUpdated => "ProductRatingUpdated",
    }
);

/// A product's stock right after its on-hand changed, against its alert
/// threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevel {
    /// Units on hand now.
    pub on_hand: i64,
    /// At or below this many units on hand, the merchant is alerted.
    pub threshold: i64,
    /// Whether an alert was raised and stock has not risen above the
    /// threshold since.
    pub alerted: bool,
}

/// What `MonitorLowStock` does after a stock change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowStockCrossing {
    /// Nothing: stock is above the threshold, or low and alerted already.
    Unchanged,
    /// Stock fell to or below the threshold: raise one alert and remember
    /// it, so staying low raises no second one.
    Fell,
    /// Stock rose above the threshold again: forget the alert, so the next
    /// fall raises a new one.
    Recovered,
}

impl StockLevel {
    /// Whether stock is at or below the threshold.
    pub fn is_low(&self) -> bool {
        self.on_hand <= self.threshold
    }

    /// The `MonitorLowStock` policy: one alert per crossing into low stock.
    pub fn crossing(&self) -> LowStockCrossing {
        match (self.is_low(), self.alerted) {
            (true, false) => LowStockCrossing::Fell,
            (false, true) => LowStockCrossing::Recovered,
            _ => LowStockCrossing::Unchanged,
        }
    }
}

/// Who may rate a product: a customer with a confirmed order for it.
/// `statuses` are the statuses of the customer's orders with the product.
pub fn may_rate(statuses: impl IntoIterator<Item = OrderStatus>) -> bool {
    statuses.into_iter().any(|s| s == OrderStatus::Confirmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: i64, threshold: i64, alerted: bool) -> StockLevel {
        StockLevel {
            on_hand,
            threshold,
            alerted,
        }
    }

    #[test]
    fn one_alert_per_crossing_into_low_stock() {
        use LowStockCrossing::*;
        assert_eq!(level(3, 3, false).crossing(), Fell, "at the threshold");
        assert_eq!(level(0, 3, false).crossing(), Fell);
        assert_eq!(level(2, 3, true).crossing(), Unchanged, "alerted already");
        assert_eq!(level(4, 3, false).crossing(), Unchanged, "above");
        assert_eq!(level(4, 3, true).crossing(), Recovered, "re-armed");
        // No threshold (0): only running out alerts.
        assert_eq!(level(1, 0, false).crossing(), Unchanged);
        assert_eq!(level(0, 0, false).crossing(), Fell);
    }

    #[test]
    fn only_buyers_with_a_confirmed_order_rate() {
        use OrderStatus::*;
        assert!(may_rate([Failed, Confirmed]));
        assert!(!may_rate([Pending, Failed]));
        assert!(!may_rate([]));
    }

    #[test]
    fn catalog_events_round_trip_through_text() {
        for e in CatalogEvent::ALL {
            assert_eq!(e.as_str().parse::<CatalogEvent>(), Ok(*e));
        }
        assert!("OrderPlaced".parse::<CatalogEvent>().is_err());
    }
}
