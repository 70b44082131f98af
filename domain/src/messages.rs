//! The messages an order produces for the support services: the customer's
//! emails at each stage and the warehouse's shipping request. Pure
//! functions of the order, so the saga builds the same message on every
//! replay and retry.

use crate::{
    DEFAULT_WAREHOUSE, EmailStage, FailureReason, Notification, OrderEmail, OrderInput,
    ShipmentLine, ShipmentRequest,
};

impl OrderInput {
    /// The "order received" email, with the payment's approval link while
    /// the buyer has yet to approve it (checkout mode).
    pub fn received_email(&self, payment_url: Option<String>) -> Option<Notification> {
        self.email(EmailStage::OrderReceived, None, false, payment_url)
    }

    /// The "order confirmed" email.
    pub fn confirmed_email(&self) -> Option<Notification> {
        self.email(EmailStage::OrderConfirmed, None, false, None)
    }

    /// The "order failed" email: why, and whether money was given back.
    pub fn failed_email(&self, reason: &FailureReason, refunded: bool) -> Option<Notification> {
        self.email(EmailStage::OrderFailed, Some(reason), refunded, None)
    }

    /// The "order amended" email: what can be served, what cannot, the
    /// refund, and how long the customer has to decide.
    pub fn amended_email(&self, amendment: &crate::Amendment) -> Option<Notification> {
        let mut email = self.email(EmailStage::OrderAmended, None, false, None)?;
        if let Notification::Order(e) = &mut email {
            e.amendment = Some(amendment.clone());
        }
        Some(email)
    }

    /// The shipping request of the confirmed order, if it has an address
    /// (orders placed before addresses existed have none).
    pub fn shipment(&self) -> Option<ShipmentRequest> {
        let address = self.shipping_address.clone()?;
        Some(ShipmentRequest {
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            lines: self.lines.iter().map(ShipmentLine::from).collect(),
            address,
            warehouse: DEFAULT_WAREHOUSE.to_string(),
            customer_email: self.customer_email.clone(),
            dispatch_alert_secs: None,
        })
    }

    /// The email of `stage`, if the order has an address to send it to
    /// (orders placed before email addresses existed have none).
    fn email(
        &self,
        stage: EmailStage,
        reason: Option<&FailureReason>,
        refunded: bool,
        payment_url: Option<String>,
    ) -> Option<Notification> {
        let to = self.customer_email.clone()?;
        Some(Notification::Order(OrderEmail {
            stage,
            order_id: self.order_id,
            customer_id: self.customer_id.clone(),
            to,
            lines: self.lines.clone(),
            total: self.total,
            reason: reason.cloned(),
            refunded,
            ship_to: self.shipping_address.clone(),
            payment_url,
            warehouse: None,
            amendment: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Currency, CustomerId, EmailAddress, Money, OrderId, OrderLine, PaymentMode,
        ShippingAddress, Sku, TransactionId,
    };

    fn order() -> OrderInput {
        let eur = Currency::parse("EUR").unwrap();
        OrderInput {
            order_id: OrderId::parse("2a87d143-8d59-41f9-bf4e-c5894583b66e").unwrap(),
            transaction_id: TransactionId::parse("6c1f2a5e-3b7d-4e55-9a1f-0b2c3d4e5f60").unwrap(),
            customer_id: CustomerId::parse("alice").unwrap(),
            lines: vec![OrderLine {
                sku: Sku::parse("MUG-1").unwrap(),
                quantity: 2,
                unit_price: Money::new(1250, eur),
            }],
            total: Money::new(2500, eur),
            customer_email: Some(EmailAddress::parse("alice@example.com").unwrap()),
            shipping_address: Some(ShippingAddress {
                name: "Alice Liddell".into(),
                line1: "1 Rabbit Hole".into(),
                line2: String::new(),
                city: "Oxford".into(),
                postal_code: "OX1 1AA".into(),
                country: "GB".into(),
            }),
            payment: PaymentMode::Simulated,
        }
    }

    fn order_email(n: Option<Notification>) -> OrderEmail {
        match n {
            Some(Notification::Order(e)) => e,
            other => panic!("expected an order email, got {other:?}"),
        }
    }

    #[test]
    fn emails_carry_the_order_and_only_their_stage_s_extras() {
        let order = order();
        let received = order_email(order.received_email(Some("https://pay/approve".into())));
        assert_eq!(received.stage, EmailStage::OrderReceived);
        assert_eq!(received.to.as_str(), "alice@example.com");
        assert_eq!(received.lines, order.lines);
        assert_eq!(received.total, order.total);
        assert_eq!(received.ship_to, order.shipping_address);
        assert_eq!(received.payment_url.as_deref(), Some("https://pay/approve"));
        assert_eq!((received.reason, received.refunded), (None, false));

        let confirmed = order_email(order.confirmed_email());
        assert_eq!(confirmed.stage, EmailStage::OrderConfirmed);
        assert_eq!(confirmed.payment_url, None);

        let reason = FailureReason::PaymentDeclined {
            message: "processor declined".into(),
        };
        let failed = order_email(order.failed_email(&reason, true));
        assert_eq!(failed.stage, EmailStage::OrderFailed);
        assert_eq!((failed.reason, failed.refunded), (Some(reason), true));
    }

    #[test]
    fn shipment_lists_what_to_ship_and_where() {
        let order = order();
        let request = order.shipment().unwrap();
        assert_eq!(request.order_id, order.order_id);
        assert_eq!(request.customer_id, order.customer_id);
        assert_eq!(
            request.lines,
            vec![ShipmentLine {
                sku: Sku::parse("MUG-1").unwrap(),
                quantity: 2
            }]
        );
        assert_eq!(Some(request.address), order.shipping_address);
    }

    #[test]
    fn orders_from_before_contacts_produce_no_messages() {
        let order = OrderInput {
            customer_email: None,
            shipping_address: None,
            ..order()
        };
        assert_eq!(order.received_email(None), None);
        assert_eq!(order.confirmed_email(), None);
        assert_eq!(order.shipment(), None);
    }
}
