//! The notifications service's activity: [`NotificationContract`]
//! (`SendEmail`, run by the `NotificationWorkflow` of sagas from before the
//! outbox).

use serde::{Deserialize, Serialize};

use crate::Notification;
use crate::names::activity;

/// Input of `SendEmail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmailInput {
    /// The email.
    pub notification: Notification,
    /// When the stage happened (the notification workflow's start), Unix
    /// ms: the retry horizon counts from here, so a backlog of emails that
    /// waited for a worker does not get a fresh 24 h.
    pub requested_at_ms: i64,
}

/// What `SendEmail` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReceipt {
    /// The email's `Message-ID`.
    pub message_id: String,
    /// `true` when an earlier attempt had already delivered it (nothing
    /// was sent this time).
    pub already_sent: bool,
}

pub use definition::*;

// `#[activity_definitions]` generates undocumented marker types and consts.
#[allow(missing_docs)]
mod definition {
    use temporalio_common::ActivityError;
    use temporalio_macros::activity_definitions;

    use super::*;

    /// The notifications service's activities as workflows call them.
    pub struct NotificationContract;

    #[activity_definitions]
    impl NotificationContract {
        /// `SendEmail`: records, renders and sends one email, once.
        #[activity(name = activity::SEND_EMAIL)]
        pub fn send_email(input: SendEmailInput) -> Result<EmailReceipt, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types the implementation names in `#[activity(definition = ..)]`.
    pub use notification_contract::*;
}
