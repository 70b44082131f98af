//! The gRPC face of the API: `ordersaga.v1.OrderService`.

use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::catalog_service_server::CatalogService as CatalogServiceRpc;
use ordersaga_proto::v1::order_service_server::OrderService as OrderServiceRpc;
use tonic::{Request, Response, Status};

use crate::catalog::{CatalogService, CreateProductCommand, StockReceiptCommand};
use crate::convert::{
    address_from_pb, pb_alert, pb_product, pb_receipt, pb_shipment, pb_status, pb_summary,
    status_from_pb,
};
use crate::service::{OrderService, PlaceOrderCommand};

/// Adapts [`OrderService`] to the generated tonic trait.
pub struct GrpcOrders(pub OrderService);

#[tonic::async_trait]
impl OrderServiceRpc for GrpcOrders {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let r = request.into_inner();
        let cmd = PlaceOrderCommand {
            customer_id: r.customer_id,
            lines: r.lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
            idempotency_key: Some(r.idempotency_key).filter(|k| !k.is_empty()),
            customer_email: r.customer_email,
            shipping_address: r.shipping_address.map(address_from_pb),
        };
        let placed = self.0.place_order(cmd).await?;
        Ok(Response::new(placed.into()))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let details = self.0.get_order(&request.into_inner().order_id).await?;
        Ok(Response::new(details.into()))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let r = request.into_inner();
        let status = status_from_pb(r.status)?;
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (page, next) = self
            .0
            .list_orders(
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
        let r = request.into_inner();
        let status = self.0.cancel_order(&r.order_id, &r.reason).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order_id: r.order_id,
            status: pb_status(status),
        }))
    }

    async fn retry_compensation(
        &self,
        request: Request<pb::RetryCompensationRequest>,
    ) -> Result<Response<pb::OperatorActionResponse>, Status> {
        let r = request.into_inner();
        let id = self
            .0
            .retry_compensation(&r.order_id, &r.operator, &r.reason)
            .await?;
        Ok(Response::new(pb::OperatorActionResponse {
            order_id: id.to_string(),
        }))
    }

    async fn close_attention(
        &self,
        request: Request<pb::CloseAttentionRequest>,
    ) -> Result<Response<pb::OperatorActionResponse>, Status> {
        let r = request.into_inner();
        let id = self
            .0
            .close_attention(&r.order_id, &r.operator, &r.reason)
            .await?;
        Ok(Response::new(pb::OperatorActionResponse {
            order_id: id.to_string(),
        }))
    }

    // ----- shipping ------------------------------------------------------

    async fn list_shipments(
        &self,
        request: Request<pb::ListShipmentsRequest>,
    ) -> Result<Response<pb::ListShipmentsResponse>, Status> {
        let r = request.into_inner();
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (page, next) = self
            .0
            .list_shipments(page_size, Some(&r.page_token))
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
        let r = request.into_inner();
        let price = r.price.unwrap_or_default();
        let product = self
            .0
            .create_product(CreateProductCommand {
                sku: r.sku,
                name: r.name,
                price_minor: price.minor_units,
                currency: price.currency,
                low_stock_threshold: r.low_stock_threshold,
            })
            .await?;
        Ok(Response::new(pb_product(&product)))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let product = self.0.get_product(&request.into_inner().sku).await?;
        Ok(Response::new(pb_product(&product)))
    }

    async fn list_products(
        &self,
        _request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        let products = self.0.list_products().await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.iter().map(pb_product).collect(),
        }))
    }

    async fn create_stock_receipt(
        &self,
        request: Request<pb::CreateStockReceiptRequest>,
    ) -> Result<Response<pb::StockReceipt>, Status> {
        let r = request.into_inner();
        let receipt = self
            .0
            .create_stock_receipt(StockReceiptCommand {
                idempotency_key: Some(r.idempotency_key),
                lines: r.lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
            })
            .await?;
        Ok(Response::new(pb_receipt(&receipt)))
    }

    async fn list_low_stock_alerts(
        &self,
        request: Request<pb::ListLowStockAlertsRequest>,
    ) -> Result<Response<pb::ListLowStockAlertsResponse>, Status> {
        let r = request.into_inner();
        let page_size = u32::try_from(r.page_size)
            .map_err(|_| Status::invalid_argument("page_size must be 0 to 100"))?;
        let (alerts, next) = self
            .0
            .list_low_stock_alerts(Some(&r.sku), page_size, Some(&r.page_token))
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
        let r = request.into_inner();
        let product = self
            .0
            .submit_rating(&r.customer_id, &r.sku, i64::from(r.stars))
            .await?;
        Ok(Response::new(pb_product(&product)))
    }
}
