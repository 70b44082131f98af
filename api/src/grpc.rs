//! The gRPC face of the API: `ordersaga.v1.OrderService` and
//! `ordersaga.v1.CatalogService`. Both sit behind [`authenticate`], which
//! turns the call's `authorization` metadata (`Bearer <token>`) into the
//! [`Principal`] the use cases check ([`crate::access`]); health and
//! reflection do not.

use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::catalog_service_server::CatalogService as CatalogServiceRpc;
use ordersaga_proto::v1::catalog_service_server::CatalogServiceServer;
use ordersaga_proto::v1::order_service_server::OrderService as OrderServiceRpc;
use ordersaga_proto::v1::order_service_server::OrderServiceServer;
use ordersaga_runtime::auth::{AuthError, Authenticator, Principal};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::catalog::{CatalogService, CreateProductCommand, StockReceiptCommand};
use crate::convert::{
    address_from_pb, pb_alert, pb_product, pb_receipt, pb_shipment, pb_spending_limit, pb_status,
    pb_summary, status_from_pb,
};
use crate::error::ApiError;
use crate::http::MAX_BODY_BYTES;
use crate::service::{OrderService, PlaceOrderCommand};
use crate::spending::LimitCommand;

/// The interceptor of the shop's services: a call without a valid bearer
/// token is refused `UNAUTHENTICATED` before its message is decoded.
pub fn authenticate(
    auth: Authenticator,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
            .transpose()
            .map_err(ApiError::from)?;
        let principal = auth.authenticate(header).map_err(ApiError::from)?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// `OrderService` as served: behind [`authenticate`], messages up to
/// [`MAX_BODY_BYTES`], undecodable ones `INVALID_ARGUMENT` (the proto
/// crate's codec).
pub fn order_service(
    service: OrderService,
    auth: Authenticator,
) -> InterceptedService<OrderServiceServer<GrpcOrders>, impl Interceptor + Clone> {
    InterceptedService::new(
        OrderServiceServer::new(GrpcOrders(service)).max_decoding_message_size(MAX_BODY_BYTES),
        authenticate(auth),
    )
}

/// `CatalogService` as served, like [`order_service`].
pub fn catalog_service(
    service: CatalogService,
    auth: Authenticator,
) -> InterceptedService<CatalogServiceServer<GrpcCatalog>, impl Interceptor + Clone> {
    InterceptedService::new(
        CatalogServiceServer::new(GrpcCatalog(service)).max_decoding_message_size(MAX_BODY_BYTES),
        authenticate(auth),
    )
}

/// The caller [`authenticate`] found.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::from(AuthError::Missing).into())
}

/// The answer to a courier's move.
fn shipment_moved(
    r: pb::ShipmentActionRequest,
    status: ordersaga_domain::ShipmentStatus,
) -> pb::ShipmentActionResponse {
    let warehouse = if r.warehouse.trim().is_empty() {
        ordersaga_domain::DEFAULT_WAREHOUSE.to_string()
    } else {
        r.warehouse.trim().to_string()
    };
    pb::ShipmentActionResponse {
        order_id: r.order_id,
        warehouse,
        status: status.to_string(),
    }
}

/// Adapts [`OrderService`] to the generated tonic trait.
pub struct GrpcOrders(pub OrderService);

#[tonic::async_trait]
impl OrderServiceRpc for GrpcOrders {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let cmd = PlaceOrderCommand {
            customer_id: r.customer_id,
            lines: r.lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
            idempotency_key: Some(r.idempotency_key).filter(|k| !k.is_empty()),
            customer_email: r.customer_email,
            shipping_address: r.shipping_address.map(address_from_pb),
        };
        let placed = self.0.place_order(&caller, cmd).await?;
        Ok(Response::new(placed.into()))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let caller = caller(&request)?;
        let details = self
            .0
            .get_order(&caller, &request.into_inner().order_id)
            .await?;
        Ok(Response::new(details.into()))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let status = status_from_pb(r.status)?;
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (page, next) = self
            .0
            .list_orders(
                &caller,
                Some(&r.customer_id),
                status,
                r.needs_attention,
                page_size,
                Some(&r.page_token),
            )
            .await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page.iter().map(pb_summary).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let status = self.0.cancel_order(&caller, &r.order_id, &r.reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order_id: r.order_id,
            status: pb_status(status),
        }))
    }

    async fn accept_amendment(
        &self,
        request: Request<pb::AcceptAmendmentRequest>,
    ) -> Result<Response<pb::AcceptAmendmentResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let status = self.0.accept_amendment(&caller, &r.order_id).await?;
        Ok(Response::new(pb::AcceptAmendmentResponse {
            order_id: r.order_id,
            status: pb_status(status),
        }))
    }

    async fn retry_compensation(
        &self,
        request: Request<pb::RetryCompensationRequest>,
    ) -> Result<Response<pb::OperatorActionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = self
            .0
            .retry_compensation(&caller, &r.order_id, &r.operator, &r.reason)
            .await?;
        Ok(Response::new(pb::OperatorActionResponse {
            order_id: id.to_string(),
        }))
    }

    async fn close_attention(
        &self,
        request: Request<pb::CloseAttentionRequest>,
    ) -> Result<Response<pb::OperatorActionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let id = self
            .0
            .close_attention(&caller, &r.order_id, &r.operator, &r.reason)
            .await?;
        Ok(Response::new(pb::OperatorActionResponse {
            order_id: id.to_string(),
        }))
    }

    // ----- spending limits -----------------------------------------------

    async fn set_spending_limit(
        &self,
        request: Request<pb::SetSpendingLimitRequest>,
    ) -> Result<Response<pb::SpendingLimit>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let limit = r.limit.map(|m| LimitCommand {
            minor_units: m.minor_units,
            currency: m.currency,
        });
        let record = self
            .0
            .set_spending_limit(&caller, &r.customer_id, limit)
            .await?;
        Ok(Response::new(pb_spending_limit(record)))
    }

    async fn get_spending_limit(
        &self,
        request: Request<pb::GetSpendingLimitRequest>,
    ) -> Result<Response<pb::SpendingLimit>, Status> {
        let caller = caller(&request)?;
        let record = self
            .0
            .get_spending_limit(&caller, &request.into_inner().customer_id)
            .await?;
        Ok(Response::new(pb_spending_limit(record)))
    }

    // ----- shipping ------------------------------------------------------

    async fn dispatch_shipment(
        &self,
        request: Request<pb::ShipmentActionRequest>,
    ) -> Result<Response<pb::ShipmentActionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let status = self
            .0
            .dispatch_shipment(&caller, &r.order_id, &r.warehouse)
            .await?;
        Ok(Response::new(shipment_moved(r, status)))
    }

    async fn deliver_shipment(
        &self,
        request: Request<pb::ShipmentActionRequest>,
    ) -> Result<Response<pb::ShipmentActionResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let status = self
            .0
            .deliver_shipment(&caller, &r.order_id, &r.warehouse)
            .await?;
        Ok(Response::new(shipment_moved(r, status)))
    }

    async fn list_shipments(
        &self,
        request: Request<pb::ListShipmentsRequest>,
    ) -> Result<Response<pb::ListShipmentsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (page, next) = self
            .0
            .list_shipments(&caller, page_size, Some(&r.page_token))
            .await?;
        Ok(Response::new(pb::ListShipmentsResponse {
            shipments: page.iter().map(pb_shipment).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

/// Adapts [`CatalogService`] to the generated tonic trait.
pub struct GrpcCatalog(pub CatalogService);

#[tonic::async_trait]
impl CatalogServiceRpc for GrpcCatalog {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let price = r.price.unwrap_or_default();
        let product = self
            .0
            .create_product(
                &caller,
                CreateProductCommand {
                    sku: r.sku,
                    name: r.name,
                    price_minor: price.minor_units,
                    currency: price.currency,
                    low_stock_threshold: r.low_stock_threshold,
                },
            )
            .await?;
        Ok(Response::new(pb_product(&product)))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let caller = caller(&request)?;
        let (product, levels) = self
            .0
            .get_product_stock(&caller, &request.into_inner().sku)
            .await?;
        let mut product = pb_product(&product);
        product.warehouses = levels
            .iter()
            .map(|(warehouse, on_hand)| pb::WarehouseStock {
                warehouse: warehouse.to_string(),
                on_hand: *on_hand,
            })
            .collect();
        Ok(Response::new(product))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let caller = caller(&request)?;
        let products = self.0.list_products(&caller).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.iter().map(pb_product).collect(),
        }))
    }

    async fn create_stock_receipt(
        &self,
        request: Request<pb::CreateStockReceiptRequest>,
    ) -> Result<Response<pb::StockReceipt>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let receipt = self
            .0
            .create_stock_receipt(
                &caller,
                StockReceiptCommand {
                    idempotency_key: Some(r.idempotency_key),
                    warehouse: Some(r.warehouse),
                    lines: r.lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
                },
            )
            .await?;
        Ok(Response::new(pb_receipt(&receipt)))
    }

    async fn list_low_stock_alerts(
        &self,
        request: Request<pb::ListLowStockAlertsRequest>,
    ) -> Result<Response<pb::ListLowStockAlertsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (alerts, next) = self
            .0
            .list_low_stock_alerts(&caller, Some(&r.sku), page_size, Some(&r.page_token))
            .await?;
        Ok(Response::new(pb::ListLowStockAlertsResponse {
            alerts: alerts.iter().map(pb_alert).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn submit_review_rating(
        &self,
        request: Request<pb::SubmitReviewRatingRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let product = self
            .0
            .submit_rating(&caller, &r.customer_id, &r.sku, i64::from(r.stars))
            .await?;
        Ok(Response::new(pb_product(&product)))
    }
}
