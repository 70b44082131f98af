//! The gRPC face of the API: `ordersaga.v1.OrderService`.

use ordersaga_proto::v1 as pb;
use ordersaga_proto::v1::order_service_server::OrderService as OrderServiceRpc;
use tonic::{Request, Response, Status};

use crate::convert::{address_from_pb, pb_product, pb_shipment, pb_summary, status_from_pb};
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
            .list_orders(Some(&r.customer_id), status, page_size, Some(&r.page_token))
            .await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page.iter().map(pb_summary).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
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
