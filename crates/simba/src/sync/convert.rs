//! Turns the marketplace's shipments into the rows Simba stores: the list's reduced shipment
//! (enough to list and count) and the detail (everything).
//!
//! The JSON columns are written straight from typed rows and from slices of the body bol sent:
//! building them as `serde_json::Value` trees (a map allocation per key) and parsing the body a
//! second time for its addresses was a quarter of a sync's CPU. The fields of the items and
//! events are in alphabetical order, the order `Value`'s maps gave them, so those columns keep
//! their text; the addresses and `raw` are bol's own text (its key order, spacing and escapes),
//! where rows stored before 2026-11-29 hold it minified with sorted keys.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::Timestamp;
use crate::store::shipments::{ItemKey, NewShipment};

/// To the second, as the columns store it: a detail then compares equal to its stored row.
fn unix(t: Option<time::OffsetDateTime>) -> Option<Timestamp> {
    t.map(|t| Timestamp::from_unix_seconds(t.unix_timestamp()))
}

fn rfc3339(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("rows of strings and numbers serialize")
}

#[derive(Serialize)]
struct ListedItem<'a> {
    ean: Option<&'a str>,
    order_item_id: Option<&'a str>,
    quantity: Option<i64>,
    title: Option<&'a str>,
}

#[derive(Serialize)]
struct DetailItem<'a> {
    commission: Option<f64>,
    ean: Option<&'a str>,
    latest_delivery_date: Option<String>,
    offer_reference: Option<&'a str>,
    order_item_id: Option<&'a str>,
    quantity: Option<i64>,
    quantity_shipped: Option<i64>,
    title: Option<&'a str>,
    unit_price: Option<f64>,
}

#[derive(Serialize)]
struct Event<'a> {
    event_code: Option<&'a str>,
    event_date_time: Option<String>,
}

/// The addresses as bol sent them: slices of the body, not re-encoded.
#[derive(Default, Deserialize, Serialize)]
struct Customer<'a> {
    #[serde(rename(deserialize = "billingDetails"), borrow, default)]
    billing_details: Option<&'a RawValue>,
    #[serde(rename(deserialize = "shipmentDetails"), borrow, default)]
    shipment_details: Option<&'a RawValue>,
}

/// A listed shipment, stored before its detail is fetched.
pub fn from_reduced(shipment: &bol::ReducedShipment, method: bol::FulfilmentMethod) -> NewShipment {
    let items: Vec<ListedItem<'_>> = shipment
        .shipment_items
        .iter()
        .map(|item| ListedItem {
            ean: item.ean.as_deref(),
            order_item_id: item.order_item_id.as_deref(),
            quantity: None,
            title: None,
        })
        .collect();
    NewShipment {
        shipment_id: shipment.shipment_id.clone(),
        shipment_date: unix(shipment.shipment_date_time).unwrap_or(Timestamp::from_unix_seconds(0)),
        shipment_reference: shipment.shipment_reference.clone(),
        fulfilment_method: method,
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
        items: to_json(&items),
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
pub fn from_detail(detail: &bol::ShipmentDetail, now: Timestamp) -> NewShipment {
    let shipment = &detail.shipment;
    let raw = detail.raw.trim();
    let items: Vec<DetailItem<'_>> = shipment
        .shipment_items
        .iter()
        .map(|item| {
            let product = item.product.as_ref();
            DetailItem {
                commission: item.commission,
                ean: product.and_then(|p| p.ean.as_deref()),
                latest_delivery_date: item
                    .fulfilment
                    .as_ref()
                    .and_then(|f| f.latest_delivery_date)
                    .map(|d| d.to_string()),
                offer_reference: item.offer.as_ref().and_then(|o| o.reference.as_deref()),
                order_item_id: item.order_item_id.as_deref(),
                quantity: item.quantity,
                quantity_shipped: item.quantity_shipped,
                title: product.and_then(|p| p.title.as_deref()),
                unit_price: item.unit_price,
            }
        })
        .collect();
    // A detail that names no method we know is taken as FBR, the method bol's shipment list
    // assumes when none is asked for; the stored method of a listed shipment is never replaced.
    let method = shipment
        .shipment_items
        .iter()
        .find_map(|i| i.fulfilment.as_ref().and_then(|f| f.method.as_deref()))
        .and_then(|method| bol::FulfilmentMethod::parse(method).ok())
        .unwrap_or(bol::FulfilmentMethod::Fbr);
    let transport = shipment.transport.as_ref();
    let events: Vec<Event<'_>> = transport
        .map(|t| {
            t.transport_events
                .iter()
                .map(|e| Event {
                    event_code: e.event_code.as_deref(),
                    event_date_time: rfc3339(e.event_date_time),
                })
                .collect()
        })
        .unwrap_or_default();
    // Cannot fail: the typed parse that made `shipment` accepted this body, these two keys
    // included, and a `RawValue` takes any value.
    let customer: Customer<'_> = serde_json::from_str(raw).unwrap_or_default();
    NewShipment {
        shipment_id: shipment.shipment_id.clone(),
        shipment_date: unix(shipment.shipment_date_time).unwrap_or(Timestamp::from_unix_seconds(0)),
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
        transport_events: Some(to_json(&events)),
        items: to_json(&items),
        item_keys: shipment
            .shipment_items
            .iter()
            .map(|item| ItemKey {
                order_item_id: item.order_item_id.clone().unwrap_or_default(),
                ean: item.product.as_ref().and_then(|p| p.ean.clone()),
            })
            .collect(),
        customer: Some(to_json(&customer)),
        raw: Some(raw.to_owned()),
        detail_synced_at: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_is_stored_as_the_rows_and_the_body_bol_sent() {
        let body = br#"{"shipmentId":"914587795","shipmentDateTime":"2025-11-20T10:15:00+01:00",
            "pickupPoint":false,"order":{"orderId":"1043946570"},
            "shipmentDetails":{"firstName":"Ana","city":"Utrecht \u00e9"},"billingDetails":null,
            "shipmentItems":[{"orderItemId":"6107434013","quantity":2,"unitPrice":12.5,
              "commission":1.25,"offer":{"reference":"SKU-1"},
              "fulfilment":{"method":"FBR","latestDeliveryDate":"2025-11-24"},
              "product":{"ean":"8717418510749","title":"Mug \"XL\""}}],
            "transport":{"transportId":"312778947","trackAndTrace":"3SBOL0987654321",
              "transportEvents":[{"eventCode":"PRE_ANNOUNCED","eventDateTime":"2025-11-20T11:00:00+01:00"}]}}
        "#;
        let detail = bol::parse::shipment_detail(body).unwrap();
        let row = from_detail(&detail, Timestamp::from_unix_seconds(7));
        assert_eq!(
            row.items,
            r#"[{"commission":1.25,"ean":"8717418510749","latest_delivery_date":"2025-11-24","offer_reference":"SKU-1","order_item_id":"6107434013","quantity":2,"quantity_shipped":null,"title":"Mug \"XL\"","unit_price":12.5}]"#
        );
        assert_eq!(
            row.transport_events.as_deref(),
            Some(r#"[{"event_code":"PRE_ANNOUNCED","event_date_time":"2025-11-20T10:00:00Z"}]"#)
        );
        assert_eq!(
            row.customer.as_deref(),
            Some(
                r#"{"billing_details":null,"shipment_details":{"firstName":"Ana","city":"Utrecht \u00e9"}}"#
            )
        );
        let raw = row.raw.unwrap();
        assert!(raw.starts_with(r#"{"shipmentId":"914587795""#) && raw.ends_with("}}"));
        assert_eq!(row.fulfilment_method, bol::FulfilmentMethod::Fbr);
        assert_eq!(row.detail_synced_at, Some(Timestamp::from_unix_seconds(7)));
        assert_eq!(row.item_keys[0].ean.as_deref(), Some("8717418510749"));
    }

    #[test]
    fn a_detail_without_addresses_stores_them_as_null() {
        let detail = bol::parse::shipment_detail(br#"{"shipmentId":"1"}"#).unwrap();
        let row = from_detail(&detail, Timestamp::from_unix_seconds(0));
        assert_eq!(row.items, "[]");
        assert_eq!(row.transport_events.as_deref(), Some("[]"));
        assert_eq!(
            row.customer.as_deref(),
            Some(r#"{"billing_details":null,"shipment_details":null}"#)
        );
    }
}
