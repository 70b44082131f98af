//! The orders of a chaos run: a seeded plan of mixed outcomes, and the
//! clients that place them (and cancel some) over HTTP, retrying with their
//! idempotency keys through the API's restarts as real clients do.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ordersaga_runtime::auth::Role;
use rand::Rng;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use serde_json::json;

use crate::auth::token;

/// What an order is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Paid and confirmed.
    Confirmed,
    /// The buyer approves, the capture is declined.
    Declined,
    /// Paid, then short of stock: refunded.
    OutOfStock,
    /// Cancelled while the buyer has not approved yet.
    CancelBefore,
    /// Approved by the client on the approval page, then cancelled at
    /// once: the cancel meets the capture (before, during or after it) or
    /// comes too late (confirmed).
    CancelAfter,
    /// Several lines.
    MultiLine,
    /// One of several buyers racing for the last units of a product.
    Race,
}

impl Kind {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Declined => "declined",
            Self::OutOfStock => "out-of-stock",
            Self::CancelBefore => "cancel-before",
            Self::CancelAfter => "cancel-after",
            Self::MultiLine => "multi-line",
            Self::Race => "race",
        }
    }
}

/// Units of each plentiful product per order planned.
const PLENTY_PER_ORDER: i64 = 4;
/// Units of a raced product, and buyers per race.
const RACE_STOCK: i64 = 2;
const RACERS: usize = 3;

/// A product of the run: sku, price in cents, opening stock.
#[derive(Debug, Clone)]
pub struct Product {
    /// Its sku.
    pub sku: String,
    /// EUR cents.
    pub price_cents: i64,
    /// Opening stock.
    pub stock: i64,
}

/// One order to place.
#[derive(Debug, Clone)]
pub struct PlannedOrder {
    /// Position in the plan.
    pub index: usize,
    /// What it exercises.
    pub kind: Kind,
    /// The client's idempotency key.
    pub key: String,
    /// Customer id.
    pub customer: String,
    /// Payer email: its local part tells the sandbox's buyer what to do.
    pub email: String,
    /// (sku, quantity).
    pub lines: Vec<(String, i64)>,
    /// When to place it, from the start of the workload.
    pub at: Duration,
    /// For cancels: how long to wait before cancelling.
    pub cancel_delay: Duration,
}

/// `n` orders spread over `window`, and the products they need.
pub fn plan(rng: &mut StdRng, n: usize, window: Duration) -> (Vec<Product>, Vec<PlannedOrder>) {
    let plenty = (n as i64).max(1) * PLENTY_PER_ORDER;
    let mut products = vec![
        product("CHAOS-MUG", 1299, plenty),
        product("CHAOS-TEE", 1999, plenty),
        // Never enough: every order of it is paid, then short, then refunded.
        product("CHAOS-SCARCE", 4999, 1),
    ];
    let mut orders = Vec::with_capacity(n);
    while orders.len() < n {
        let index = orders.len();
        let at = window.mul_f64(index as f64 / n as f64);
        let roll = rng.gen_range(0..100);
        let kind = match roll {
            0..30 => Kind::Confirmed,
            30..44 => Kind::Declined,
            44..56 => Kind::OutOfStock,
            56..70 => Kind::CancelBefore,
            70..84 => Kind::CancelAfter,
            84..95 => Kind::MultiLine,
            // Three orders each: about 13% of the orders.
            _ => Kind::Race,
        };
        if kind == Kind::Race {
            let sku = format!("CHAOS-LAST-{index}");
            products.push(product(&sku, 2999, RACE_STOCK));
            for _ in 0..RACERS.min(n - orders.len()) {
                let i = orders.len();
                orders.push(order(i, kind, vec![(sku.clone(), 1)], at, Duration::ZERO));
            }
            continue;
        }
        let qty = rng.gen_range(1..=3);
        let lines = match kind {
            Kind::OutOfStock => vec![("CHAOS-SCARCE".to_string(), 2)],
            Kind::MultiLine => vec![("CHAOS-MUG".to_string(), qty), ("CHAOS-TEE".to_string(), 1)],
            _ => vec![(
                if rng.gen_bool(0.5) {
                    "CHAOS-MUG"
                } else {
                    "CHAOS-TEE"
                }
                .to_string(),
                qty,
            )],
        };
        let delay = Duration::from_millis(rng.gen_range(0..1500));
        orders.push(order(index, kind, lines, at, delay));
    }
    (products, orders)
}

fn product(sku: &str, price_cents: i64, stock: i64) -> Product {
    Product {
        sku: sku.to_string(),
        price_cents,
        stock,
    }
}

fn order(
    index: usize,
    kind: Kind,
    lines: Vec<(String, i64)>,
    at: Duration,
    cancel_delay: Duration,
) -> PlannedOrder {
    // The sandbox's buyer acts on the local part; a manual buyer waits.
    let buyer = match kind {
        Kind::Declined => "decline",
        Kind::CancelBefore | Kind::CancelAfter => "wait",
        _ => "approve",
    };
    PlannedOrder {
        index,
        kind,
        key: format!("chaos-{index}"),
        customer: format!("chaos-customer-{index}"),
        email: format!("{buyer}-{index}@buyer.test"),
        lines,
        at,
        cancel_delay,
    }
}

/// What the client got.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The plan's order.
    pub plan: PlannedOrder,
    /// Set once the API accepted it.
    pub accepted: Option<Accepted>,
    /// Requests sent for `PlaceOrder` (retries included).
    pub attempts: u32,
    /// The last error, if never accepted or the cancel never went through.
    pub error: Option<String>,
    /// The cancel's answer: `true` accepted, `false` too late (409).
    pub cancelled: Option<bool>,
}

/// The API's answer to an accepted order.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Accepted {
    /// Order id.
    pub order_id: String,
    /// The gateway's idempotency key.
    pub transaction_id: String,
    /// Its saga's workflow id.
    pub workflow_id: String,
    /// The buyer's approval link, if the answer had it already.
    #[serde(default)]
    pub approval_url: Option<String>,
}

/// How long a client keeps retrying one request.
const CLIENT_PATIENCE: Duration = Duration::from_secs(300);

/// A real client: retries on connection errors, timeouts and 5xx with the
/// same idempotency key; gives up on other refusals.
pub struct Client {
    http: reqwest::Client,
    api: String,
}

impl Client {
    /// A client of the API at `api` (`http://host:port`).
    pub fn new(api: String) -> anyhow::Result<Self> {
        Ok(Self {
            // No redirects: the approval page answers the press itself.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            api,
        })
    }

    /// Places `order` (and cancels it, for the cancel kinds).
    pub async fn run(&self, order: PlannedOrder) -> Placed {
        let mut placed = Placed {
            plan: order,
            accepted: None,
            attempts: 0,
            error: None,
            cancelled: None,
        };
        match self.place(&mut placed).await {
            Ok(a) => placed.accepted = Some(a),
            Err(e) => {
                placed.error = Some(format!("{e:#}"));
                return placed;
            }
        }
        let cancel = match placed.plan.kind {
            // The buyer cancels once the order has its approval link (an
            // order cancelled before it has none, and no "received" email:
            // that email carries the link).
            Kind::CancelBefore => {
                let ready = self
                    .wait_for(&placed, |j| j["approval_url"].is_string())
                    .await;
                tokio::time::sleep(placed.plan.cancel_delay).await;
                ready
            }
            Kind::CancelAfter => match self.approve(&placed).await {
                Ok(()) => {
                    tokio::time::sleep(placed.plan.cancel_delay / 15).await;
                    true
                }
                Err(e) => {
                    placed.error = Some(format!("approve: {e:#}"));
                    false
                }
            },
            _ => false,
        };
        if cancel {
            match self.cancel(&placed).await {
                Ok(c) => placed.cancelled = Some(c),
                Err(e) => placed.error = Some(format!("cancel: {e:#}")),
            }
        }
        placed
    }

    async fn place(&self, placed: &mut Placed) -> anyhow::Result<Accepted> {
        let o = &placed.plan;
        let body = json!({
            "customer_id": o.customer,
            "customer_email": o.email,
            "shipping_address": {"name": "Chaos Buyer", "line1": "1 Main St", "city": "Berlin",
                                 "postal_code": "10115", "country": "DE"},
            "lines": o.lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
        });
        let url = format!("{}/v1/orders", self.api);
        let key = o.key.clone();
        // Each buyer calls with its own customer token.
        let bearer = token(Role::Customer, &o.customer);
        let mut attempts = 0;
        let result = retrying(|| {
            attempts += 1;
            self.http
                .post(&url)
                .bearer_auth(&bearer)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
        })
        .await;
        placed.attempts = attempts;
        let (status, text) = result?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "PlaceOrder: {status}: {text}"
        );
        Ok(serde_json::from_str(&text)?)
    }

    /// Polls the order until `ready` holds for it; `false` if it ended (or
    /// the wait ran out) first.
    async fn wait_for(&self, placed: &Placed, ready: impl Fn(&serde_json::Value) -> bool) -> bool {
        let Some(a) = &placed.accepted else {
            return false;
        };
        let url = format!("{}/v1/orders/{}", self.api, a.order_id);
        let bearer = token(Role::Customer, &placed.plan.customer);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(&url).bearer_auth(&bearer).send().await
                && let Ok(j) = r.json::<serde_json::Value>().await
            {
                if ready(&j) {
                    return true;
                }
                if j["status"] == "CONFIRMED" || j["status"] == "FAILED" {
                    return false;
                }
            }
            // Capture to confirmation takes a few workflow tasks: look often.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// The buyer presses Approve on the approval page (found on the order
    /// once the saga has it).
    async fn approve(&self, placed: &Placed) -> anyhow::Result<()> {
        let Some(a) = &placed.accepted else {
            anyhow::bail!("not accepted");
        };
        let mut link = a.approval_url.clone();
        let url = format!("{}/v1/orders/{}", self.api, a.order_id);
        let bearer = token(Role::Customer, &placed.plan.customer);
        let deadline = Instant::now() + CLIENT_PATIENCE;
        while link.is_none() && Instant::now() < deadline {
            if let Ok(r) = self.http.get(&url).bearer_auth(&bearer).send().await
                && let Ok(j) = r.json::<serde_json::Value>().await
            {
                link = j["approval_url"].as_str().map(str::to_string);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let link = link.context("no approval link")?;
        let press = link.replacen("/checkoutnow?", "/checkoutnow/approve?", 1);
        let (status, text) = retrying(|| self.http.post(&press).send()).await?;
        anyhow::ensure!(
            status.is_success() || status.is_redirection(),
            "approve: {status}: {text}"
        );
        Ok(())
    }

    async fn cancel(&self, placed: &Placed) -> anyhow::Result<bool> {
        let Some(a) = &placed.accepted else {
            anyhow::bail!("not accepted");
        };
        let url = format!("{}/v1/orders/{}/cancel", self.api, a.order_id);
        let body = json!({"reason": "chaos client changed its mind"});
        let bearer = token(Role::Customer, &placed.plan.customer);
        let deadline = Instant::now() + CLIENT_PATIENCE;
        loop {
            let (status, text) =
                retrying(|| self.http.post(&url).bearer_auth(&bearer).json(&body).send()).await?;
            match status {
                s if s.is_success() => return Ok(true),
                StatusCode::CONFLICT => return Ok(false),
                // Not stored yet: the saga's first step has not run.
                StatusCode::NOT_FOUND if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                s => anyhow::bail!("CancelOrder: {s}: {text}"),
            }
        }
    }
}

/// Sends until an answer that is not a 5xx/429 (or a transport error)
/// comes, backing off up to 2 s, for at most [`CLIENT_PATIENCE`].
async fn retrying<F, Fut>(mut send: F) -> anyhow::Result<(StatusCode, String)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let deadline = Instant::now() + CLIENT_PATIENCE;
    let mut backoff = Duration::from_millis(100);
    loop {
        let last = match send().await {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                    return Ok((status, text));
                }
                format!("{status}: {text}")
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            anyhow::bail!("gave up after {CLIENT_PATIENCE:?}: {last}");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
