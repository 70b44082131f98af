//! Compensations that cannot finish on their own. The saga undoes what it
//! did with [`Compensation`]s; one that the other side refuses for good
//! (the gateway answers a refund with a 4xx) is *parked*: the order still
//! ends `FAILED`, the other compensations still run, and the order needs
//! an operator's attention ([`AttentionStatus::Open`]) until one retries it
//! or closes it with a recorded [`OperatorNote`].

use serde::{Deserialize, Serialize};

text_enum!(
    /// An undo action of the saga, registered as it advances.
    Compensation {
        /// A charge or capture may have taken money: give it back.
        RefundPayment => "RefundPayment",
        /// Stock was deducted: put it back.
        ReleaseInventory => "ReleaseInventory",
        /// Checkout: the gateway order exists but is not captured; make
        /// sure it never will be.
        VoidPayment => "VoidPayment",
        /// The order's total was reserved against the customer's spending
        /// limit: give the reservation back.
        ReleaseSpending => "ReleaseSpending",
    }
);

impl Compensation {
    /// Whether it settles the customer's money (refund or void): those run
    /// before the stock is put back, so stock never returns while the
    /// money stays.
    pub fn settles_money(self) -> bool {
        matches!(self, Self::RefundPayment | Self::VoidPayment)
    }
}

text_enum!(
    /// Where a parked compensation stands.
    AttentionStatus {
        /// Parked: waiting for an operator.
        Open => "OPEN",
        /// An operator's retry succeeded.
        Resolved => "RESOLVED",
        /// An operator closed it with a reason (e.g. refunded by hand).
        Closed => "CLOSED",
    }
);

/// Longest operator name kept.
pub const MAX_OPERATOR: usize = 100;
/// Longest operator reason kept.
pub const MAX_OPERATOR_REASON: usize = 500;

/// Who acted on an order's parked compensations, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNote {
    /// Who (a name or id the shop's back office knows).
    pub operator: String,
    /// Why; may be empty for a retry, required to close.
    pub reason: String,
}

/// Why an [`OperatorNote`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// No operator named, or an unprintable or overlong one.
    #[error("operator must be 1 to {MAX_OPERATOR} printable characters")]
    Operator,
    /// An unprintable or overlong reason, or none where one is required.
    #[error("reason must be {min} to {MAX_OPERATOR_REASON} printable characters")]
    Reason {
        /// The shortest allowed.
        min: usize,
    },
}

fn printable(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.chars().count()) && !text.chars().any(char::is_control)
}

impl OperatorNote {
    /// A validated note, trimmed; `reason_required` for a close.
    pub fn new(operator: &str, reason: &str, reason_required: bool) -> Result<Self, NoteError> {
        let (operator, reason) = (operator.trim(), reason.trim());
        if !printable(operator, 1, MAX_OPERATOR) {
            return Err(NoteError::Operator);
        }
        let min = usize::from(reason_required);
        if !printable(reason, min, MAX_OPERATOR_REASON) {
            return Err(NoteError::Reason { min });
        }
        Ok(Self {
            operator: operator.to_string(),
            reason: reason.to_string(),
        })
    }
}

impl std::fmt::Display for OperatorNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "by {}", self.operator)
        } else {
            write!(f, "by {}: {}", self.operator, self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_settled_before_stock() {
        let settling: Vec<_> = Compensation::ALL
            .iter()
            .filter(|c| c.settles_money())
            .collect();
        assert_eq!(
            settling,
            [&Compensation::RefundPayment, &Compensation::VoidPayment]
        );
    }

    #[test]
    fn notes_name_someone_and_a_close_says_why() {
        let retry = OperatorNote::new(" ops-ana ", "", false).unwrap();
        assert_eq!(retry.operator, "ops-ana");
        assert_eq!(retry.to_string(), "by ops-ana");
        assert_eq!(
            OperatorNote::new("ops-ana", " ", true),
            Err(NoteError::Reason { min: 1 })
        );
        assert_eq!(OperatorNote::new("", "x", true), Err(NoteError::Operator));
        assert_eq!(
            OperatorNote::new("ops\u{7}", "x", true),
            Err(NoteError::Operator)
        );
        let long = "x".repeat(MAX_OPERATOR_REASON + 1);
        assert!(OperatorNote::new("ops", &long, false).is_err());
        let closed = OperatorNote::new("ops", "refunded by bank transfer", true).unwrap();
        assert_eq!(closed.to_string(), "by ops: refunded by bank transfer");
    }
}
