//! The API process: the front door of the shop's order flow.
//!
//! It validates and prices `PlaceOrder` (including the customer's email and
//! shipping address), starts the order's saga on Temporal and answers at
//! once (in checkout mode with the buyer's approval link, by
//! update-with-start); it forwards `CancelOrder` to the saga (an update the
//! saga may refuse) and the payment gateway's verified webhooks (a signal); it reads orders from the shop store (and, for an order whose first
//! step has not run yet, asks Temporal), and lists the warehouse's shipping
//! requests (`ListShipments`). The same [`service::OrderService`] and
//! [`catalog::CatalogService`] are served over gRPC ([`grpc`], with health
//! and reflection) and HTTP/JSON ([`http`]); [`error::ApiError`] renders
//! failures for both.

pub mod catalog;
pub mod convert;
pub mod demo;
pub mod error;
pub mod grpc;
pub mod http;
mod idempotency;
mod page;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use ordersaga_domain::names::ORDERS_TASK_QUEUE;
use ordersaga_domain::{CheckoutTiming, PaymentMode};
use ordersaga_proto::v1::FILE_DESCRIPTOR_SET;
use ordersaga_proto::v1::catalog_service_server::CatalogServiceServer;
use ordersaga_proto::v1::order_service_server::OrderServiceServer;
use ordersaga_runtime::connection::{TemporalSettings, connect};
use ordersaga_store::Store;
use tokio::net::TcpListener;

use crate::catalog::CatalogService;
use crate::grpc::{GrpcCatalog, GrpcOrders};
use crate::service::{OrderService, PaymentSettings};

/// Everything the API process can be told; each field has an
/// `ORDERSAGA_*` variable (see the README).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Temporal connection overrides on top of the SDK's envconfig.
    pub temporal: TemporalSettings,
    /// The shop database: `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Task queue the order sagas are started on.
    pub task_queue: String,
    /// gRPC listen address (port 0 picks a free port).
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// Create the demo catalog at start-up if missing.
    pub seed_demo: bool,
    /// Payment mode of new orders and the webhook secret.
    pub payment: PaymentSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            temporal: TemporalSettings::default(),
            database_url: "sqlite://.data/ordersaga.db?mode=rwc".to_string(),
            task_queue: ORDERS_TASK_QUEUE.to_string(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            seed_demo: false,
            payment: PaymentSettings::default(),
        }
    }
}

impl ApiSettings {
    /// Defaults overridden by `ORDERSAGA_*` variables.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut s = Self::default();
        let var = |name: &str| std::env::var(name).ok();
        if let Some(v) = var("ORDERSAGA_DATABASE_URL") {
            s.database_url = v;
        }
        if let Some(v) = var("ORDERSAGA_TASK_QUEUE") {
            s.task_queue = v;
        }
        if let Some(v) = var("ORDERSAGA_GRPC_ADDR") {
            s.grpc_addr = v.parse().context("ORDERSAGA_GRPC_ADDR")?;
        }
        if let Some(v) = var("ORDERSAGA_HTTP_ADDR") {
            s.http_addr = v.parse().context("ORDERSAGA_HTTP_ADDR")?;
        }
        if let Some(v) = var("ORDERSAGA_SEED_DEMO") {
            s.seed_demo = matches!(v.as_str(), "1" | "true" | "yes");
        }
        let secs = |name: &str, default: u64| -> anyhow::Result<u64> {
            var(name).map_or(Ok(default), |v| v.parse().with_context(|| name.to_string()))
        };
        s.payment.mode = match var("ORDERSAGA_PAYMENT_MODE").as_deref() {
            None | Some("simulated") => PaymentMode::Simulated,
            Some("checkout") => {
                let default = CheckoutTiming::default();
                PaymentMode::Checkout(CheckoutTiming {
                    deadline_secs: secs("ORDERSAGA_PAYMENT_DEADLINE_SECS", default.deadline_secs)?,
                    poll_secs: secs("ORDERSAGA_PAYMENT_POLL_SECS", default.poll_secs)?,
                })
            }
            Some(other) => {
                anyhow::bail!("ORDERSAGA_PAYMENT_MODE must be simulated or checkout, got {other:?}")
            }
        };
        if let Some(v) = var("ORDERSAGA_PAYMENT_LINK_WAIT_MS") {
            s.payment.link_wait = std::time::Duration::from_millis(
                v.parse().context("ORDERSAGA_PAYMENT_LINK_WAIT_MS")?,
            );
        }
        s.payment.webhook_secret = var("ORDERSAGA_WEBHOOK_SECRET").filter(|v| !v.is_empty());
        Ok(s)
    }
}

/// A built API: listeners bound, store and Temporal connected.
pub struct Api {
    service: OrderService,
    catalog: CatalogService,
    grpc: TcpListener,
    http: TcpListener,
}

impl Api {
    /// Connects the store and Temporal and binds both listeners.
    pub async fn build(settings: ApiSettings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url)
            .await
            .context("shop database")?;
        let mut temporal = settings.temporal.clone();
        temporal
            .identity
            .get_or_insert_with(|| "ordersaga-api".to_string());
        let client = connect(&temporal).await?;
        if settings.seed_demo {
            demo::seed(&store)
                .await
                .context("seeding the demo catalog")?;
        }
        if let PaymentMode::Checkout(timing) = settings.payment.mode {
            tracing::info!(
                deadline_secs = timing.deadline_secs,
                poll_secs = timing.poll_secs,
                "orders pay by checkout"
            );
            if settings.payment.webhook_secret.is_none() {
                tracing::warn!(
                    "ORDERSAGA_WEBHOOK_SECRET is not set: every payment webhook is refused; \
                     payments complete by the reconciliation poll alone"
                );
            }
        }
        let grpc = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC on {}", settings.grpc_addr))?;
        let http = TcpListener::bind(settings.http_addr)
            .await
            .with_context(|| format!("binding HTTP on {}", settings.http_addr))?;
        Ok(Self {
            catalog: CatalogService::new(store.clone()),
            service: OrderService::new(store, client, settings.task_queue, settings.payment),
            grpc,
            http,
        })
    }

    /// Where gRPC is served.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// Where HTTP is served.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// Serves both until `shutdown` resolves, then finishes in-flight
    /// requests and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<OrderServiceServer<GrpcOrders>>().await;
        // v1 for current tools, v1alpha for grpcurl < 1.9 and Postman.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().context("gRPC reflection")?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .context("gRPC reflection (v1alpha)")?;
        let orders = OrderServiceServer::new(GrpcOrders(self.service.clone()))
            .max_decoding_message_size(http::MAX_BODY_BYTES);
        let catalog = CatalogServiceServer::new(GrpcCatalog(self.catalog.clone()))
            .max_decoding_message_size(http::MAX_BODY_BYTES);
        health
            .set_serving::<CatalogServiceServer<GrpcCatalog>>()
            .await;
        let grpc = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(orders)
            .add_service(catalog)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.grpc),
                stopped(),
            );
        let state = http::AppState {
            orders: self.service,
            catalog: self.catalog,
        };
        let http = axum::serve(self.http, http::router(state)).with_graceful_shutdown(stopped());
        let (g, h) = tokio::join!(grpc, http);
        g.context("gRPC server")?;
        h.context("HTTP server")?;
        Ok(())
    }
}
