//! PayPal's JSON answers, as far as the adapter reads them: tokens,
//! errors, orders with their captures, refunds.

use ordersaga_domain::contracts::checkout::{
    Capture, CaptureId, CaptureStatus, CheckoutStatus, GatewayOrderId, OrderSnapshot,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct TokenBody {
    pub(super) access_token: String,
    #[serde(default)]
    pub(super) expires_in: u64,
}

#[derive(Deserialize, Default)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
pub(super) struct ErrorDetail {
    pub(super) issue: String,
}

#[derive(Deserialize)]
pub(super) struct OrderBody {
    pub(super) id: String,
    pub(super) status: CheckoutStatus,
    #[serde(default)]
    pub(super) links: Vec<LinkBody>,
    #[serde(default)]
    pub(super) purchase_units: Vec<UnitBody>,
}

#[derive(Deserialize)]
pub(super) struct LinkBody {
    pub(super) href: String,
    pub(super) rel: String,
}

#[derive(Deserialize)]
pub(super) struct UnitBody {
    pub(super) custom_id: Option<String>,
    #[serde(default)]
    pub(super) payments: PaymentsBody,
}

#[derive(Deserialize, Default)]
pub(super) struct PaymentsBody {
    #[serde(default)]
    pub(super) captures: Vec<CaptureBody>,
}

#[derive(Deserialize)]
pub(super) struct CaptureBody {
    pub(super) id: String,
    pub(super) status: CaptureStatus,
    pub(super) status_details: Option<StatusDetails>,
}

#[derive(Deserialize)]
pub(super) struct StatusDetails {
    pub(super) reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RefundBody {
    pub(super) id: String,
}

impl OrderBody {
    pub(super) fn capture(&self) -> Option<&CaptureBody> {
        self.purchase_units
            .iter()
            .flat_map(|u| u.payments.captures.iter())
            .next()
    }

    pub(super) fn snapshot(self) -> OrderSnapshot {
        let capture = self.capture().map(|c| Capture {
            id: CaptureId::new(c.id.clone()),
            status: c.status,
        });
        OrderSnapshot {
            id: GatewayOrderId::new(self.id),
            status: self.status,
            custom_id: self.purchase_units.into_iter().find_map(|u| u.custom_id),
            capture,
        }
    }
}
