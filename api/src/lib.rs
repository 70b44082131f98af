//! The API process: the front door of the shop's order flow.
//!
//! It validates and prices `PlaceOrder` (including the customer's email and
//! shipping address), starts the order's saga on Temporal and answers at
//! once (in checkout mode with the buyer's approval link, by
//! update-with-start); it forwards `CancelOrder` to the saga (an update the
//! saga may refuse), operators' decisions on compensations the saga parked
//! ([`attention`], updates too) and the payment gateway's verified webhooks
//! (a signal); it reads orders from the shop store (and, for an order whose
//! first step has not run yet, asks Temporal), and lists the warehouse's shipping
//! requests (`ListShipments`), moves shipments for couriers
//! ([`shipments`]: `Dispatch`, `Deliver`) and keeps customers' spending limits
//! ([`spending`]). The same [`service::OrderService`] and
//! [`catalog::CatalogService`] are served over gRPC ([`grpc`], with health
//! and reflection) and HTTP/JSON ([`http`]); [`error::ApiError`] renders
//! failures for both. Each request runs in a span that names its order
//! ([`spans`]); on shutdown, in-flight requests get
//! [`ApiSettings::graceful_shutdown`] to finish ([`drain_within`]).
//!
//! Every call but health, reflection, `/healthz` and the signed payment
//! webhook carries a bearer token; [`access`] says who may do what, [`rate`]
//! how fast a customer may order, and [`tls`] serves both over TLS when a
//! certificate is configured.
//!
//! On the same HTTP port, [`web`] serves the shop (`/shop`) and the
//! operations console (`/console`) as HTML pages over the same use cases.

pub mod access;
pub mod attention;
pub mod catalog;
pub mod codec;
pub mod convert;
pub mod demo;
pub mod error;
pub mod grpc;
pub mod http;
mod idempotency;
pub mod openapi;
mod page;
pub mod rate;
pub mod service;
pub mod settings;
pub mod shipments;
pub mod spans;
pub mod spending;
pub mod tls;
pub mod web;

pub use settings::ApiSettings;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use ordersaga_domain::PaymentMode;
use ordersaga_proto::v1::FILE_DESCRIPTOR_SET;
use ordersaga_proto::v1::catalog_service_server::CatalogServiceServer;
use ordersaga_proto::v1::order_service_server::OrderServiceServer;
use ordersaga_runtime::auth::{Authenticator, Role};
use ordersaga_runtime::connection::connect;
use ordersaga_store::Store;
use tokio::net::TcpListener;

use crate::catalog::CatalogService;
use crate::codec::{CodecServer, OperatorCheck};
use crate::grpc::{GrpcCatalog, GrpcOrders};
use crate::rate::PlaceOrderLimit;
use crate::service::OrderService;
use crate::tls::Tls;

/// How often keys fetched from a JWKS URL are reloaded (identity
/// providers publish a new key well before they sign with it).
const JWKS_REFRESH: Duration = Duration::from_secs(300);

/// A built API: listeners bound, store and Temporal connected.
pub struct Api {
    service: OrderService,
    catalog: CatalogService,
    auth: Authenticator,
    tls: Option<Tls>,
    grpc: TcpListener,
    http: TcpListener,
    graceful_shutdown: Duration,
    /// The codec server, when there are payload keys and token keys.
    codec: Option<CodecServer>,
    codec_cors_origins: Vec<String>,
    /// The shop's and the console's pages.
    web: web::Web,
}

/// The codec server's gate: a bearer token with the operator role.
fn operator_check(auth: Authenticator) -> OperatorCheck {
    std::sync::Arc::new(move |header| {
        auth.authenticate(header)
            .is_ok_and(|caller| caller.role == Role::Operator)
    })
}

impl Api {
    /// Connects the store and Temporal and binds both listeners.
    pub async fn build(settings: ApiSettings) -> anyhow::Result<Self> {
        let auth = Authenticator::new(&settings.auth)
            .await
            .context("bearer token keys")?;
        let tls = settings.tls.as_ref().map(Tls::load).transpose()?;
        if tls.is_none() {
            tracing::warn!("no TLS certificate: gRPC and HTTP are served in plain text");
        }
        let store = Store::connect(&settings.database_url)
            .await
            .context("shop database")?
            .with_events(settings.publish_events);
        let mut temporal = settings.temporal.clone();
        temporal
            .identity
            .get_or_insert_with(|| "ordersaga-api".to_string());
        let client = connect(&temporal).await?;
        let web = web::Web::new(
            &settings.web,
            tls.is_some(),
            temporalio_client::NamespacedClient::namespace(&client),
        )
        .context("web pages")?;
        let codec = match (temporal.codec.key_ring()?, &settings.auth.keys) {
            (Some(ring), Some(_)) => {
                let auth = Authenticator::new(&settings.auth)
                    .await
                    .context("bearer token keys")?;
                Some(CodecServer::new(ring, operator_check(auth)))
            }
            (Some(_), None) => {
                tracing::warn!("no bearer token keys: the codec server is off");
                None
            }
            (None, _) => None,
        };
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
            service: OrderService::new(
                store,
                client,
                settings.task_queue,
                settings.payment,
                PlaceOrderLimit::new(settings.place_order_rate),
            ),
            auth,
            tls,
            grpc,
            http,
            graceful_shutdown: settings.graceful_shutdown,
            codec,
            codec_cors_origins: settings.codec_cors_origins,
            web,
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

    /// Serves both until `shutdown` resolves, then lets in-flight requests
    /// finish for up to [`ApiSettings::graceful_shutdown`] and returns.
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
        let orders = grpc::order_service(self.service.clone(), self.auth.clone());
        let catalog = grpc::catalog_service(self.catalog.clone(), self.auth.clone());
        if self.auth.fetches_keys() {
            let auth = self.auth.clone();
            let stop = stopped();
            tokio::spawn(async move {
                tokio::pin!(stop);
                let mut every = tokio::time::interval(JWKS_REFRESH);
                every.tick().await;
                loop {
                    tokio::select! {
                        () = &mut stop => return,
                        _ = every.tick() => {}
                    }
                    if let Err(e) = auth.refresh().await {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "JWKS refresh failed; keeping the keys in use"
                        );
                    }
                }
            });
        }
        let mut grpc_server = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            grpc_server = grpc_server.tls_config(tls.grpc()).context("gRPC TLS")?;
        }
        health
            .set_serving::<CatalogServiceServer<GrpcCatalog>>()
            .await;
        let grpc = grpc_server
            .trace_fn(spans::grpc)
            .layer(tower::util::MapFutureLayer::new(spans::grpc_answered))
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
            auth: self.auth,
        };
        let mut router = http::router(state.clone())
            .merge(web::router(state, self.web))
            .layer(axum::middleware::from_fn(spans::http));
        // Outside the `http` span: its path may hold a token.
        if let Some(codec) = self.codec {
            router = router.merge(codec.router(&self.codec_cors_origins));
        }
        let http = async {
            match &self.tls {
                Some(tls) => {
                    axum::serve(tls.listener(self.http)?, router)
                        .with_graceful_shutdown(stopped())
                        .await
                }
                None => {
                    axum::serve(self.http, router)
                        .with_graceful_shutdown(stopped())
                        .await
                }
            }
        };
        let serving = async {
            let (g, h) = tokio::join!(grpc, http);
            g.context("gRPC server")?;
            h.context("HTTP server")
        };
        match drain_within(self.graceful_shutdown, stopped(), serving).await {
            Some(served) => served,
            None => {
                tracing::warn!(
                    grace_ms = self.graceful_shutdown.as_millis(),
                    "in-flight requests did not finish in time: dropped"
                );
                Ok(())
            }
        }
    }
}

/// Awaits `serving` (servers that stop accepting once `stopped` resolves
/// and then wait for their in-flight requests), but no longer than `grace`
/// after `stopped`: `None` when the drain ran out of time, and what was
/// still in flight is dropped with the future.
pub async fn drain_within<T>(
    grace: Duration,
    stopped: impl Future<Output = ()>,
    serving: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => return Some(served),
        () = stopped => {},
    }
    tokio::time::timeout(grace, serving).await.ok()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_drain_that_finishes_in_time_returns_its_result() {
        let served = drain_within(Duration::from_secs(5), std::future::pending(), async { 7 });
        assert_eq!(served.await, Some(7));
        let (stop, stopped) = oneshot::channel::<()>();
        drop(stop);
        let served = drain_within(
            Duration::from_secs(5),
            async {
                let _ = stopped.await;
            },
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "drained"
            },
        );
        assert_eq!(served.await, Some("drained"));
    }

    /// A real server with a request that never ends: without the bound the
    /// graceful shutdown would wait for it forever.
    #[tokio::test]
    async fn a_stuck_request_does_not_hold_the_shutdown_beyond_the_grace() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (entered_tx, entered) = oneshot::channel::<()>();
        let entered_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(entered_tx)));
        let router = axum::Router::new().route(
            "/stuck",
            get(move || {
                if let Some(tx) = entered_tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(());
                }
                std::future::pending::<&'static str>()
            }),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let server = axum::serve(listener, router).with_graceful_shutdown(until_stopped());
        let grace = Duration::from_millis(300);
        let drained = tokio::spawn(drain_within(
            grace,
            until_stopped(),
            async move { server.await },
        ));
        let request = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(
                &mut stream,
                b"GET /stuck HTTP/1.1\r\nhost: test\r\n\r\n",
            )
            .await
            .unwrap();
            // Hold the connection open while the handler hangs.
            std::future::pending::<()>().await;
        });
        entered.await.unwrap();
        let asked = Instant::now();
        stop.send(true).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .expect("the drain is bounded")
            .unwrap();
        assert!(outcome.is_none(), "the stuck request cannot have finished");
        let took = asked.elapsed();
        assert!(
            took >= grace && took < grace + Duration::from_secs(2),
            "{took:?}"
        );
        request.abort();
    }
}
