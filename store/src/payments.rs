//! The payments repository: one payment per order, keyed by its
//! `transactionId`, moved between statuses only as
//! [`PaymentStatus::can_become`] allows, each move recorded once in the
//! order's history. Beside it, [`GatewayBooks`]: the simulated gateway's
//! own books.

use ordersaga_domain::{
    Money, OrderEvent, OrderId, OrderStatus, Outgoing, PaymentStatus, TransactionId,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{change_status_returning, money, now_ms, parse_col};
use crate::orders::insert_event;
use crate::outbox::enqueue;
use crate::{Result, Store, StoreError};

mod gateway_books;

pub use gateway_books::{GatewayBooks, GatewayLedger};

/// The stored payment of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// The payment's `transactionId`.
    pub transaction_id: TransactionId,
    /// Where the payment is.
    pub status: PaymentStatus,
    /// Amount charged or to charge.
    pub amount: Money,
    /// The gateway's reason, when declined.
    pub decline_reason: Option<String>,
    /// Checkout payments: where the buyer approves it.
    pub approval_url: Option<String>,
}

/// Where the buyer of a checkout payment pays: the gateway's order and its
/// approval link (for the "order received" email and `GetOrder`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLink {
    /// The gateway's order id (PayPal's order id, the approval page's token).
    pub gateway_order_id: String,
    /// The buyer's approval page.
    pub approval_url: String,
}

/// The payments repository; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Payments<'a> {
    store: &'a Store,
}

impl<'a> Payments<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// The simulated gateway's books, kept in the shop database.
    pub fn gateway_books(self) -> GatewayBooks<'a> {
        GatewayBooks::new(self.store)
    }

    /// First half of `ProcessPayment`: the payment exists `PENDING` with the
    /// order's `transactionId`, created only while the order is `PENDING`.
    /// Returns the payment as it now stands, or `None` when the order has
    /// failed (no money is taken for it; an earlier attempt's payment is
    /// left as it is).
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.ensure", otel.kind = "client"))]
    pub async fn ensure(
        self,
        order_id: &OrderId,
        transaction_id: &TransactionId,
        amount: Money,
    ) -> Result<Option<PaymentRecord>> {
        // The order's status is checked by the insert itself, which saves
        // the step a read.
        let inserted = self
            .insert_pending(order_id, transaction_id, amount, Some(OrderStatus::Pending))
            .await?;
        // The row just written is the order's payment (`order_id` is
        // unique): only an earlier attempt's needs reading back.
        if inserted {
            return Ok(Some(PaymentRecord {
                transaction_id: *transaction_id,
                status: PaymentStatus::Pending,
                amount,
                decline_reason: None,
                approval_url: None,
            }));
        }
        if self.store.orders().failure(order_id).await?.is_some() {
            return Ok(None);
        }
        self.stored(order_id).await.map(Some)
    }

    /// Second half of `ProcessPayment`: records the gateway's answer once
    /// (`PaymentProcessed` or `PaymentProcessFailed`). A payment already
    /// settled keeps its status. Returns the payment as it now stands.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.record_outcome", otel.kind = "client"))]
    pub async fn record_outcome(
        self,
        order_id: &OrderId,
        outcome: std::result::Result<(), &str>,
    ) -> Result<PaymentRecord> {
        let (to, event, reason) = match outcome {
            Ok(()) => (PaymentStatus::Captured, OrderEvent::PaymentProcessed, None),
            Err(reason) => (
                PaymentStatus::Declined,
                OrderEvent::PaymentProcessFailed,
                Some(reason),
            ),
        };
        // The moved row comes back with the update; only a payment that
        // did not move (settled by an earlier attempt) is read.
        match self.settle(order_id, to, event, reason).await? {
            Some(row) => record_from_row(&row),
            None => self.stored(order_id).await,
        }
    }

    /// Checkout's `OpenPayment`: the payment exists `PENDING` with the
    /// order's `transactionId`, the gateway's order id and the buyer's
    /// approval link. Idempotent; a settled payment keeps its status.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.open_checkout", otel.kind = "client"))]
    pub async fn open_checkout(
        self,
        order_id: &OrderId,
        transaction_id: &TransactionId,
        amount: Money,
        link: &PaymentLink,
        outgoing: &[Outgoing],
    ) -> Result<PaymentRecord> {
        // Also for an order that ended meanwhile: its gateway order exists,
        // and the reconciliation voids it through this row.
        self.insert_pending(order_id, transaction_id, amount, None)
            .await?;
        // The link and the email that carries it commit together.
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "UPDATE payments SET gateway_order_id = $1, approval_url = $2 \
             WHERE order_id = $3 AND gateway_order_id IS NULL",
        )
        .bind(&link.gateway_order_id)
        .bind(&link.approval_url)
        .bind(order_id.to_string())
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, outgoing, now_ms()).await?;
        tx.commit().await?;
        self.stored(order_id).await
    }

    /// Records that a pending payment was never approved and its gateway
    /// order is voided (`PaymentProcessFailed` with `reason`), once.
    /// Returns whether this call recorded it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.record_voided", otel.kind = "client"))]
    pub async fn record_voided(self, order_id: &OrderId, reason: &str) -> Result<bool> {
        let moved = self
            .settle(
                order_id,
                PaymentStatus::Voided,
                OrderEvent::PaymentProcessFailed,
                Some(reason),
            )
            .await?;
        Ok(moved.is_some())
    }

    /// Records the refund of a payment (`PaymentRefunded`) once.
    /// Returns whether this call recorded it.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.record_refund", otel.kind = "client"))]
    pub async fn record_refund(self, order_id: &OrderId) -> Result<bool> {
        let moved = self
            .settle(
                order_id,
                PaymentStatus::Refunded,
                OrderEvent::PaymentRefunded,
                None,
            )
            .await?;
        Ok(moved.is_some())
    }

    /// The approval link of an order's checkout payment, if it has one.
    #[tracing::instrument(name = "db", level = "debug", skip_all, fields(otel.name = "payments.link", otel.kind = "client"))]
    pub async fn link(self, order_id: &OrderId) -> Result<Option<PaymentLink>> {
        let row = sqlx::query(
            "SELECT gateway_order_id, approval_url FROM payments \
             WHERE order_id = $1 AND gateway_order_id IS NOT NULL AND approval_url IS NOT NULL",
        )
        .bind(order_id.to_string())
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| {
            Ok(PaymentLink {
                gateway_order_id: r.try_get("gateway_order_id")?,
                approval_url: r.try_get("approval_url")?,
            })
        })
        .transpose()
    }

    /// The order's payment, if one was created.
    pub(crate) async fn of_order(self, order_id: &OrderId) -> Result<Option<PaymentRecord>> {
        sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM payments WHERE order_id = $1"
        ))
        .bind(order_id.to_string())
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| record_from_row(&row))
        .transpose()
    }

    /// Writes the order's payment `PENDING` unless it has one, and with
    /// `order_status` only while the order has that status. Returns whether
    /// it wrote the row.
    async fn insert_pending(
        self,
        order_id: &OrderId,
        transaction_id: &TransactionId,
        amount: Money,
        order_status: Option<OrderStatus>,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO payments (transaction_id, order_id, amount_minor, currency, status, \
             created_at, updated_at) SELECT $1, $2, $3, $4, $5, $6, $6 \
             WHERE $7 IS NULL \
             OR EXISTS (SELECT 1 FROM orders WHERE order_id = $2 AND status = $7) \
             ON CONFLICT (transaction_id) DO NOTHING",
        )
        .bind(transaction_id.to_string())
        .bind(order_id.to_string())
        .bind(amount.minor)
        .bind(amount.currency.as_str())
        .bind(PaymentStatus::Pending.as_str())
        .bind(now_ms())
        .bind(order_status.map(|s| s.as_str()))
        .execute(&self.store.writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn stored(self, order_id: &OrderId) -> Result<PaymentRecord> {
        self.of_order(order_id)
            .await?
            .ok_or(StoreError::OrderNotFound(*order_id))
    }

    /// Moves the order's payment to `to` where [`PaymentStatus::can_become`]
    /// allows it, keeping `reason` (the gateway's, or why it was voided;
    /// a payment that took money has none) and recording `event` with it,
    /// in one transaction. A payment that may not move keeps its status, so
    /// a retried step records nothing twice. Returns the moved row
    /// ([`RECORD_COLUMNS`]), or `None` when this call did not move it.
    async fn settle(
        self,
        order_id: &OrderId,
        to: PaymentStatus,
        event: OrderEvent,
        reason: Option<&str>,
    ) -> Result<Option<AnyRow>> {
        let now = now_ms();
        let id = order_id.to_string();
        let mut tx = self.store.begin_write().await?;
        let columns = [("decline_reason", reason)];
        let moved =
            change_status_returning(&mut tx, "payments", &id, to, &columns, now, RECORD_COLUMNS)
                .await?;
        if moved.is_some() {
            insert_event(&mut tx, self.store.events, &id, event, reason, now).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}

/// The columns of a [`PaymentRecord`].
const RECORD_COLUMNS: &str =
    "transaction_id, status, amount_minor, currency, decline_reason, approval_url";

fn record_from_row(row: &AnyRow) -> Result<PaymentRecord> {
    Ok(PaymentRecord {
        transaction_id: parse_col(row, "transaction_id")?,
        status: parse_col(row, "status")?,
        amount: money(row, "amount_minor")?,
        decline_reason: row.try_get("decline_reason")?,
        approval_url: row.try_get("approval_url")?,
    })
}
