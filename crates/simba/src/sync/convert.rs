//! Turns the marketplace's shipments into the rows Simba stores: the list's reduced shipment
//! (enough to list and count) and the detail (everything).

use serde_json::{Value, json};

use crate::store::shipments::{ItemKey, NewShipment};

fn unix(t: Option<time::OffsetDateTime>) -> Option<i64> {
    t.map(time::OffsetDateTime::unix_timestamp)
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// A listed shipment, stored before its detail is fetched.
pub fn from_reduced(shipment: &bol::ReducedShipment, method: bol::FulfilmentMethod) -> NewShipment {
    let items: Vec<Value> = shipment
        .shipment_items
        .iter()
        .map(|item| json!({"order_item_id": item.order_item_id, "ean": item.ean, "title": null, "quantity": null}))
        .collect();
    NewShipment {
        shipment_id: shipment.shipment_id.clone(),
        shipment_date: unix(shipment.shipment_date_time).unwrap_or_default(),
        shipment_reference: shipment.shipment_reference.clone(),
        fulfilment_method: method.as_str().to_owned(),
        order_id: shipment.order.as_ref().and_then(|o| o.order_id.clone()),
        order_placed_at: unix(
            shipment
                .order
                .as_ref()
                .and_then(|o| o.order_placed_date_time),
        ),
        pickup_point: None,
        transport_id: shipment
            .transport
            .as_ref()
            .and_then(|t| t.transport_id.clone()),
        transporter_code: None,
        track_and_trace: None,
        shipping_label_id: None,
        transport_events: None,
        items: Value::Array(items).to_string(),
        item_keys: shipment
            .shipment_items
            .iter()
            .map(|item| ItemKey {
                order_item_id: item.order_item_id.clone().unwrap_or_default(),
                ean: item.ean.clone(),
            })
            .collect(),
        customer: None,
        raw: None,
        detail_synced_at: None,
    }
}

/// A shipment's detail. Its list row was stored first, so the fulfilment method (which the
/// detail gives per item, not per shipment) is kept from the list.
pub fn from_detail(detail: &bol::ShipmentDetail, now: i64) -> NewShipment {
    let shipment = &detail.shipment;
    let raw: Value = serde_json::from_str(&detail.raw).unwrap_or(Value::Null);
    let items: Vec<Value> = shipment
        .shipment_items
        .iter()
        .map(|item| {
            json!({
                "order_item_id": item.order_item_id,
                "ean": item.product.as_ref().and_then(|p| p.ean.clone()),
                "title": item.product.as_ref().and_then(|p| p.title.clone()),
                "quantity": item.quantity,
                "quantity_shipped": item.quantity_shipped,
                "unit_price": item.unit_price,
                "commission": item.commission,
                "offer_reference": item.offer.as_ref().and_then(|o| o.reference.clone()),
                "latest_delivery_date": item.fulfilment.as_ref()
                    .and_then(|f| f.latest_delivery_date).map(|d| d.to_string()),
            })
        })
        .collect();
    let method = shipment
        .shipment_items
        .iter()
        .find_map(|i| i.fulfilment.as_ref().and_then(|f| f.method.clone()))
        .unwrap_or_default();
    let transport = shipment.transport.as_ref();
    let events: Vec<Value> = transport
        .map(|t| {
            t.transport_events
                .iter()
                .map(|e| json!({"event_code": e.event_code, "event_date_time": rfc3339(e.event_date_time)}))
                .collect()
        })
        .unwrap_or_default();
    let customer = json!({
        "shipment_details": raw.get("shipmentDetails").cloned().unwrap_or(Value::Null),
        "billing_details": raw.get("billingDetails").cloned().unwrap_or(Value::Null),
    });
    NewShipment {
        shipment_id: shipment.shipment_id.clone(),
        shipment_date: unix(shipment.shipment_date_time).unwrap_or_default(),
        shipment_reference: shipment.shipment_reference.clone(),
        fulfilment_method: method,
        order_id: shipment.order.as_ref().and_then(|o| o.order_id.clone()),
        order_placed_at: unix(
            shipment
                .order
                .as_ref()
                .and_then(|o| o.order_placed_date_time),
        ),
        pickup_point: shipment.pickup_point,
        transport_id: transport.and_then(|t| t.transport_id.clone()),
        transporter_code: transport.and_then(|t| t.transporter_code.clone()),
        track_and_trace: transport.and_then(|t| t.track_and_trace.clone()),
        shipping_label_id: transport.and_then(|t| t.shipping_label_id.clone()),
        transport_events: Some(Value::Array(events).to_string()),
        items: Value::Array(items).to_string(),
        item_keys: shipment
            .shipment_items
            .iter()
            .map(|item| ItemKey {
                order_item_id: item.order_item_id.clone().unwrap_or_default(),
                ean: item.product.as_ref().and_then(|p| p.ean.clone()),
            })
            .collect(),
        customer: Some(customer.to_string()),
        raw: (!raw.is_null()).then(|| raw.to_string()),
        detail_synced_at: Some(now),
    }
}
