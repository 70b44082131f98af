//! Test controls: how the simulated buyer behaves and which faults the
//! sandbox injects. Tests and demos set them through `POST /sandbox/controls`
//! (see `docs/payments.md`); they live in memory and start at "no faults,
//! manual buyer" on every start.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the simulated buyer does with a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    /// Nothing: a person (or a browser test) uses the approval page.
    #[default]
    Manual,
    /// Approves at once; the capture succeeds.
    Approve,
    /// Approves at once; the capture is declined by the "processor".
    Decline,
    /// Cancels on the approval page at once.
    Cancel,
}

impl Behavior {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Approve => "approve",
            Self::Decline => "decline",
            Self::Cancel => "cancel",
        }
    }

    /// Parses a stored or header value.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "manual" => Some(Self::Manual),
            "approve" => Some(Self::Approve),
            "decline" => Some(Self::Decline),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }

    /// The behaviour a payer email asks for: `approve…@`, `decline…@` and
    /// `cancel…@` local parts (e.g. `decline+42@buyer.test`).
    pub fn for_email(email: &str) -> Option<Self> {
        let local = email.split('@').next()?.to_ascii_lowercase();
        [Self::Approve, Self::Decline, Self::Cancel]
            .into_iter()
            .find(|b| local.starts_with(b.as_str()))
    }
}

/// The current controls, as `GET /sandbox/controls` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controls {
    /// Behaviour of buyers not chosen by header or email.
    pub default_behavior: Behavior,
    /// Added before every PayPal API answer.
    pub latency_ms: u64,
    /// The next N PayPal API calls fail with `fail_status`, doing nothing.
    pub fail_next: u32,
    /// Status of injected failures (5xx).
    pub fail_status: u16,
    /// The next N PayPal API calls hang for `hang_ms`, do nothing, then 504.
    pub timeout_next: u32,
    /// How long hangs last (injected timeouts and lost answers).
    pub hang_ms: u64,
    /// The next N captures are committed, then their answer is lost (a hang
    /// for `hang_ms`, then 504).
    pub lose_capture_answer_next: u32,
    /// The same for refunds.
    pub lose_refund_answer_next: u32,
    /// The next N captures of an approved order are refused (422, nothing
    /// captured) with the issue `refuse_capture_issue`.
    pub refuse_capture_next: u32,
    /// The `details[].issue` of refused captures, e.g.
    /// `PAYER_ACTION_REQUIRED` (the buyer must act at PayPal again).
    pub refuse_capture_issue: String,
    /// While set, every refund is refused for good (422
    /// `TRANSACTION_REFUSED`), as PayPal refuses one it will not make.
    pub refuse_refunds: bool,
    /// Where webhooks go; `None` sends none.
    pub webhook_url: Option<String>,
    /// Each webhook is delivered 1 + N times.
    pub webhook_duplicates: u32,
    /// Webhooks are held until `POST /sandbox/webhooks/release`.
    pub webhook_hold: bool,
    /// The next N webhooks are lost (never delivered).
    pub webhook_drop_next: u32,
}

impl Controls {
    /// No faults, manual buyers, webhooks to `webhook_url`.
    pub fn new(webhook_url: Option<String>) -> Self {
        Self {
            default_behavior: Behavior::Manual,
            latency_ms: 0,
            fail_next: 0,
            fail_status: 500,
            timeout_next: 0,
            hang_ms: 30_000,
            lose_capture_answer_next: 0,
            lose_refund_answer_next: 0,
            refuse_capture_next: 0,
            refuse_capture_issue: "PAYER_ACTION_REQUIRED".to_string(),
            refuse_refunds: false,
            webhook_url,
            webhook_duplicates: 0,
            webhook_hold: false,
            webhook_drop_next: 0,
        }
    }

    /// Applies the fields a patch sets.
    pub fn apply(&mut self, p: ControlsPatch) {
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = p.$f { self.$f = v; } )*};
        }
        set!(
            default_behavior,
            latency_ms,
            fail_next,
            fail_status,
            timeout_next,
            hang_ms,
            lose_capture_answer_next,
            lose_refund_answer_next,
            refuse_capture_next,
            refuse_capture_issue,
            refuse_refunds,
            webhook_duplicates,
            webhook_hold,
            webhook_drop_next
        );
        if let Some(url) = p.webhook_url {
            // An empty URL turns webhooks off.
            self.webhook_url = Some(url).filter(|u| !u.is_empty());
        }
    }

    /// The fault for the next PayPal API call, consuming one of the counted
    /// ones.
    pub fn next_call(&mut self) -> CallFaults {
        let fault = if self.fail_next > 0 {
            self.fail_next -= 1;
            Some(Fault::Fail(self.fail_status))
        } else if self.timeout_next > 0 {
            self.timeout_next -= 1;
            Some(Fault::Hang(self.hang()))
        } else {
            None
        };
        CallFaults {
            latency: Duration::from_millis(self.latency_ms),
            fault,
        }
    }

    /// Whether to lose the answer of the capture just committed.
    pub fn take_lost_capture(&mut self) -> Option<Duration> {
        take(&mut self.lose_capture_answer_next).then(|| self.hang())
    }

    /// The issue to refuse this capture with, if one is armed.
    pub fn take_refused_capture(&mut self) -> Option<String> {
        take(&mut self.refuse_capture_next).then(|| self.refuse_capture_issue.clone())
    }

    /// Whether to lose the answer of the refund just committed.
    pub fn take_lost_refund(&mut self) -> Option<Duration> {
        take(&mut self.lose_refund_answer_next).then(|| self.hang())
    }

    fn hang(&self) -> Duration {
        Duration::from_millis(self.hang_ms)
    }
}

fn take(counter: &mut u32) -> bool {
    let armed = *counter > 0;
    *counter = counter.saturating_sub(1);
    armed
}

/// Body of `POST /sandbox/controls`: every field optional; absent fields
/// keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlsPatch {
    /// See [`Controls::default_behavior`].
    pub default_behavior: Option<Behavior>,
    /// See [`Controls::latency_ms`].
    pub latency_ms: Option<u64>,
    /// See [`Controls::fail_next`].
    pub fail_next: Option<u32>,
    /// See [`Controls::fail_status`].
    pub fail_status: Option<u16>,
    /// See [`Controls::timeout_next`].
    pub timeout_next: Option<u32>,
    /// See [`Controls::hang_ms`].
    pub hang_ms: Option<u64>,
    /// See [`Controls::lose_capture_answer_next`].
    pub lose_capture_answer_next: Option<u32>,
    /// See [`Controls::lose_refund_answer_next`].
    pub lose_refund_answer_next: Option<u32>,
    /// See [`Controls::refuse_capture_next`].
    pub refuse_capture_next: Option<u32>,
    /// See [`Controls::refuse_capture_issue`].
    pub refuse_capture_issue: Option<String>,
    /// See [`Controls::refuse_refunds`].
    pub refuse_refunds: Option<bool>,
    /// See [`Controls::webhook_url`]; `""` turns webhooks off.
    pub webhook_url: Option<String>,
    /// See [`Controls::webhook_duplicates`].
    pub webhook_duplicates: Option<u32>,
    /// See [`Controls::webhook_hold`].
    pub webhook_hold: Option<bool>,
    /// See [`Controls::webhook_drop_next`].
    pub webhook_drop_next: Option<u32>,
}

/// What happens to one PayPal API call before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFaults {
    /// Delay before anything else.
    pub latency: Duration,
    /// An injected failure instead of the handler.
    pub fault: Option<Fault>,
}

/// An injected failure; neither runs the handler, so nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status at once.
    Fail(u16),
    /// Hang this long, then answer 504.
    Hang(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_consumed_in_turn() {
        let mut c = Controls::new(None);
        c.apply(ControlsPatch {
            fail_next: Some(1),
            fail_status: Some(503),
            timeout_next: Some(1),
            hang_ms: Some(5),
            ..ControlsPatch::default()
        });
        assert_eq!(c.next_call().fault, Some(Fault::Fail(503)));
        assert_eq!(
            c.next_call().fault,
            Some(Fault::Hang(Duration::from_millis(5)))
        );
        assert_eq!(c.next_call().fault, None);
    }

    #[test]
    fn buyer_behaviour_follows_the_email() {
        assert_eq!(
            Behavior::for_email("decline+1@buyer.test"),
            Some(Behavior::Decline)
        );
        assert_eq!(
            Behavior::for_email("Approve@buyer.test"),
            Some(Behavior::Approve)
        );
        assert_eq!(Behavior::for_email("alice@buyer.test"), None);
    }
}
