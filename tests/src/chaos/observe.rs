//! What a chaos run finds once it is quiet, from the three books: the shop
//! database, the payments sandbox's counters and Temporal's histories, plus
//! the mail the SMTP server received.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use ordersaga_domain::names::ORDER_WORKFLOW_TYPE;
use sqlx::{AnyPool, Row};
use temporalio_client::{Client, UntypedWorkflow, WorkflowFetchHistoryOptions};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

use super::workload::Placed;
use crate::{SandboxCounts, SmtpServer};

/// An order as the shop stored it.
#[derive(Debug, Clone)]
pub struct ShopOrder {
    /// `CONFIRMED`, `FAILED`, `PENDING`...
    pub status: String,
    /// Why it failed.
    pub failure_code: Option<String>,
    /// (sku, quantity).
    pub lines: Vec<(String, i64)>,
}

/// The shop database's side.
#[derive(Debug, Default)]
pub struct Shop {
    /// By order id.
    pub orders: HashMap<String, ShopOrder>,
    /// Order id of each (customer, idempotency key).
    pub keys: HashMap<(String, String), String>,
    /// Per sku: on hand.
    pub on_hand: BTreeMap<String, i64>,
    /// Per sku: sum of the ledger.
    pub ledger: BTreeMap<String, i64>,
    /// Per sku: units received (opening stock included).
    pub received: BTreeMap<String, i64>,
    /// Order ids with a shipment.
    pub shipments: HashSet<String>,
    /// The needs-attention list: order id -> reason (an open parked
    /// compensation, or an open reconciler finding).
    pub attention: HashMap<String, String>,
    /// Open reconciler findings: (kind, subject).
    pub findings: Vec<(String, String)>,
}

/// Reads the shop database.
pub async fn shop(pool: &AnyPool) -> anyhow::Result<Shop> {
    let mut shop = Shop::default();
    for r in sqlx::query("SELECT order_id, status, failure_code FROM orders")
        .fetch_all(pool)
        .await?
    {
        shop.orders.insert(
            r.try_get("order_id")?,
            ShopOrder {
                status: r.try_get("status")?,
                failure_code: r.try_get("failure_code")?,
                lines: Vec::new(),
            },
        );
    }
    for r in sqlx::query("SELECT order_id, sku, quantity FROM order_lines")
        .fetch_all(pool)
        .await?
    {
        let id: String = r.try_get("order_id")?;
        if let Some(o) = shop.orders.get_mut(&id) {
            o.lines.push((r.try_get("sku")?, r.try_get("quantity")?));
        }
    }
    for r in sqlx::query("SELECT customer_id, idem_key, order_id FROM idempotency_keys")
        .fetch_all(pool)
        .await?
    {
        shop.keys.insert(
            (r.try_get("customer_id")?, r.try_get("idem_key")?),
            r.try_get("order_id")?,
        );
    }
    for r in sqlx::query("SELECT sku, on_hand FROM products")
        .fetch_all(pool)
        .await?
    {
        shop.on_hand
            .insert(r.try_get("sku")?, r.try_get("on_hand")?);
    }
    // Summed here: SUM of BIGINT is NUMERIC on PostgreSQL.
    for r in sqlx::query("SELECT sku, delta FROM stock_movements")
        .fetch_all(pool)
        .await?
    {
        *shop.ledger.entry(r.try_get("sku")?).or_default() += r.try_get::<i64, _>("delta")?;
    }
    for r in sqlx::query("SELECT sku, quantity FROM stock_receipt_lines")
        .fetch_all(pool)
        .await?
    {
        *shop.received.entry(r.try_get("sku")?).or_default() += r.try_get::<i64, _>("quantity")?;
    }
    for r in sqlx::query("SELECT order_id FROM shipments")
        .fetch_all(pool)
        .await?
    {
        shop.shipments.insert(r.try_get("order_id")?);
    }
    // Parked compensations (issue 11 defect 1): absent from older schemas.
    if let Ok(rows) = sqlx::query(
        "SELECT order_id, compensation, reason FROM compensation_attention WHERE status = 'OPEN'",
    )
    .fetch_all(pool)
    .await
    {
        for r in rows {
            let reason = format!(
                "{}: {}",
                r.try_get::<String, _>("compensation")?,
                r.try_get::<String, _>("reason")?
            );
            shop.attention.insert(r.try_get("order_id")?, reason);
        }
    }
    // The reconciler's open findings also put their order on the list.
    for r in
        sqlx::query("SELECT kind, subject, order_id FROM reconciler_findings WHERE status = 'OPEN'")
            .fetch_all(pool)
            .await?
    {
        let kind: String = r.try_get("kind")?;
        if let Some(order_id) = r.try_get::<Option<String>, _>("order_id")? {
            shop.attention
                .entry(order_id)
                .or_insert_with(|| format!("reconciler: {kind}"));
        }
        shop.findings.push((kind, r.try_get("subject")?));
    }
    Ok(shop)
}

/// Whether every accepted order has ended (or waits for an operator).
pub fn all_settled(shop: &Shop, placed: &[Placed]) -> bool {
    placed.iter().filter_map(|p| p.accepted.as_ref()).all(|a| {
        shop.attention.contains_key(&a.order_id)
            || shop
                .orders
                .get(&a.order_id)
                .is_some_and(|o| o.status == "CONFIRMED" || o.status == "FAILED")
    })
}

/// Order workflows still running, per Temporal's visibility.
pub async fn running_workflows(client: &Client) -> anyhow::Result<usize> {
    let query = format!("WorkflowType = '{ORDER_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'");
    Ok(client
        .count_workflows(query, Default::default())
        .await?
        .count() as usize)
}

/// The sandbox's counters of each transaction.
pub async fn sandbox_books(
    base: &str,
    placed: &[Placed],
) -> anyhow::Result<HashMap<String, SandboxCounts>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut books = HashMap::new();
    for a in placed.iter().filter_map(|p| p.accepted.as_ref()) {
        let url = format!("{base}/sandbox/transactions/{}", a.transaction_id);
        let r = http.get(&url).send().await?;
        let counts = if r.status() == reqwest::StatusCode::NOT_FOUND {
            SandboxCounts::default()
        } else {
            r.error_for_status()?.json().await?
        };
        books.insert(a.order_id.clone(), counts);
    }
    Ok(books)
}

/// Emails received per (order id, stage slug).
pub fn mail(smtp: &SmtpServer) -> anyhow::Result<HashMap<(String, String), usize>> {
    let mut counts = HashMap::new();
    for m in smtp.messages()? {
        // `<{stage}.{subject}@ordersaga>` (domain/src/notify.rs).
        let id = m.message_id.trim_matches(|c| c == '<' || c == '>');
        let Some((stage, rest)) = id.split_once('.') else {
            continue;
        };
        let subject = rest.trim_end_matches("@ordersaga");
        *counts
            .entry((subject.to_string(), stage.to_string()))
            .or_default() += 1;
    }
    Ok(counts)
}

/// An order workflow's history, summed up.
#[derive(Debug, Default, Clone)]
pub struct WorkflowFacts {
    /// It has a close event.
    pub closed: bool,
    /// Workflow tasks that failed: cause and message of each.
    pub task_failures: Vec<(String, String)>,
    /// The last workflow task failed and none followed.
    pub failing_now: bool,
}

/// Reads the history of each accepted order's workflow.
pub async fn workflows(
    client: &Client,
    placed: &[Placed],
) -> anyhow::Result<HashMap<String, WorkflowFacts>> {
    let mut facts = HashMap::new();
    for a in placed.iter().filter_map(|p| p.accepted.as_ref()) {
        let events = client
            .get_workflow_handle::<UntypedWorkflow>(a.workflow_id.clone())
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await?;
        let mut f = WorkflowFacts::default();
        for e in events {
            match e.attributes {
                Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
                    let cause = WorkflowTaskFailedCause::try_from(a.cause)
                        .map_or("UNKNOWN", |c| c.as_str_name());
                    let message = a.failure.map(|f| f.message).unwrap_or_default();
                    f.task_failures.push((cause.to_string(), message));
                    f.failing_now = true;
                }
                Some(Attributes::WorkflowTaskCompletedEventAttributes(_)) => f.failing_now = false,
                Some(
                    Attributes::WorkflowExecutionCompletedEventAttributes(_)
                    | Attributes::WorkflowExecutionFailedEventAttributes(_)
                    | Attributes::WorkflowExecutionTimedOutEventAttributes(_)
                    | Attributes::WorkflowExecutionTerminatedEventAttributes(_)
                    | Attributes::WorkflowExecutionCanceledEventAttributes(_)
                    | Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_),
                ) => f.closed = true,
                _ => {}
            }
        }
        facts.insert(a.order_id.clone(), f);
    }
    Ok(facts)
}
