//! Shipment models of the Retailer API v10, parsed tolerantly.
//!
//! bol adds fields without a version bump, omits empty arrays (an empty page is `{}`), dropped
//! spec-"required" fields in the past and sent numeric ids in old versions. So every field but
//! `shipment_id` is optional, unknown fields are ignored, ids accept numbers, and a date-time
//! that does not parse becomes `None` rather than failing a whole page. The shipment id alone
//! is checked, as it ends up in URLs and database keys.

use serde::{Deserialize, Deserializer, de::Error as _};
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

/// Fulfilment method: the shipments list needs one call series per method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
pub enum FulfilmentMethod {
    /// Fulfilled by the retailer.
    #[serde(rename = "FBR")]
    Fbr,
    /// Fulfilled by bol.
    #[serde(rename = "FBB")]
    Fbb,
}

impl FulfilmentMethod {
    /// Reads the wire value, exactly as bol spells it.
    pub fn parse(value: &str) -> Result<FulfilmentMethod, String> {
        match value {
            "FBR" => Ok(FulfilmentMethod::Fbr),
            "FBB" => Ok(FulfilmentMethod::Fbb),
            _ => Err("must be FBR or FBB".into()),
        }
    }

    /// The value bol uses on the wire: `FBR` or `FBB`.
    pub fn as_str(self) -> &'static str {
        match self {
            FulfilmentMethod::Fbr => "FBR",
            FulfilmentMethod::Fbb => "FBB",
        }
    }
}

impl std::fmt::Display for FulfilmentMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shipments per list page; a shorter page is the last one.
pub const PAGE_SIZE: usize = 50;

/// One page of `GET /retailer/shipments`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentPage {
    /// Newest first; empty past the end.
    #[serde(default, deserialize_with = "null_as_default")]
    pub shipments: Vec<ReducedShipment>,
}

impl ShipmentPage {
    /// Whether a later page can hold more shipments.
    pub fn is_last(&self) -> bool {
        self.shipments.len() < PAGE_SIZE
    }
}

/// A shipment as the list shows it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReducedShipment {
    /// bol's id, a string of digits.
    #[serde(deserialize_with = "shipment_id")]
    pub shipment_id: String,
    /// When it was shipped.
    #[serde(default, deserialize_with = "date_time")]
    pub shipment_date_time: Option<OffsetDateTime>,
    /// The retailer's own reference.
    #[serde(default)]
    pub shipment_reference: Option<String>,
    /// The order it belongs to.
    #[serde(default)]
    pub order: Option<Order>,
    /// Items: order item id and EAN only.
    #[serde(default, deserialize_with = "null_as_default")]
    pub shipment_items: Vec<ReducedShipmentItem>,
    /// Transport: its id only.
    #[serde(default)]
    pub transport: Option<ReducedTransport>,
}

/// The order of a shipment.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// bol's order id.
    #[serde(default, deserialize_with = "opt_id")]
    pub order_id: Option<String>,
    /// When the customer placed it.
    #[serde(default, deserialize_with = "date_time")]
    pub order_placed_date_time: Option<OffsetDateTime>,
}

/// A list item's shipment item.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReducedShipmentItem {
    /// bol's order item id.
    #[serde(default, deserialize_with = "opt_id")]
    pub order_item_id: Option<String>,
    /// The product's EAN.
    #[serde(default, deserialize_with = "opt_id")]
    pub ean: Option<String>,
}

/// A list item's transport.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReducedTransport {
    /// bol's transport id.
    #[serde(default, deserialize_with = "opt_id")]
    pub transport_id: Option<String>,
}

/// `GET /retailer/shipments/{id}`: a shipment with address, prices and tracking.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    /// bol's id, a string of digits.
    #[serde(deserialize_with = "shipment_id")]
    pub shipment_id: String,
    /// When it was shipped.
    #[serde(default, deserialize_with = "date_time")]
    pub shipment_date_time: Option<OffsetDateTime>,
    /// The retailer's own reference.
    #[serde(default)]
    pub shipment_reference: Option<String>,
    /// Whether it goes to a pick-up point.
    #[serde(default)]
    pub pickup_point: Option<bool>,
    /// The order it belongs to.
    #[serde(default)]
    pub order: Option<Order>,
    /// Where it goes.
    #[serde(default)]
    pub shipment_details: Option<ShipmentDetails>,
    /// Who pays.
    #[serde(default)]
    pub billing_details: Option<BillingDetails>,
    /// What is in it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub shipment_items: Vec<ShipmentItem>,
    /// Carrier and tracking.
    #[serde(default)]
    pub transport: Option<Transport>,
}

/// The delivery address and customer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ShipmentDetails {
    /// Name of the pick-up point, if any.
    pub pickup_point_name: Option<String>,
    /// `MALE`, `FEMALE` or `UNKNOWN`.
    pub salutation: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Street.
    pub street_name: Option<String>,
    /// House number.
    pub house_number: Option<String>,
    /// House number extension.
    pub house_number_extension: Option<String>,
    /// Extra address line.
    pub extra_address_information: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO country code.
    pub country_code: Option<String>,
    /// bol's scrambled relay address.
    pub email: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// Phone number for the carrier.
    pub delivery_phone_number: Option<String>,
    /// `nl`, `nl-BE`, `fr` or `fr-BE`.
    pub language: Option<String>,
}

/// The billing address.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BillingDetails {
    /// `MALE`, `FEMALE` or `UNKNOWN`.
    pub salutation: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Street.
    pub street_name: Option<String>,
    /// House number.
    pub house_number: Option<String>,
    /// House number extension.
    pub house_number_extension: Option<String>,
    /// Extra address line.
    pub extra_address_information: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO country code.
    pub country_code: Option<String>,
    /// bol's scrambled relay address.
    pub email: Option<String>,
    /// Company name.
    pub company: Option<String>,
    /// VAT number.
    pub vat_number: Option<String>,
    /// Chamber of commerce number.
    pub kvk_number: Option<String>,
    /// The customer's own order reference.
    pub order_reference: Option<String>,
}

/// One item of a shipment detail.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ShipmentItem {
    /// bol's order item id.
    #[serde(deserialize_with = "opt_id")]
    pub order_item_id: Option<String>,
    /// How it is fulfilled.
    pub fulfilment: Option<Fulfilment>,
    /// The retailer's offer.
    pub offer: Option<Offer>,
    /// The product.
    pub product: Option<Product>,
    /// Units ordered.
    pub quantity: Option<i64>,
    /// Units shipped (added in 10.23).
    pub quantity_shipped: Option<i64>,
    /// Price per unit, in euros.
    pub unit_price: Option<f64>,
    /// bol's commission, in euros.
    pub commission: Option<f64>,
}

/// Fulfilment of an item.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Fulfilment {
    /// `FBR` or `FBB`.
    pub method: Option<String>,
    /// `RETAILER` or `BOL`.
    pub distribution_party: Option<String>,
    /// The promised delivery date.
    #[serde(deserialize_with = "date")]
    pub latest_delivery_date: Option<Date>,
}

/// The retailer's offer of an item.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Offer {
    /// bol's offer id (a UUID).
    #[serde(deserialize_with = "opt_id")]
    pub offer_id: Option<String>,
    /// The retailer's reference, often a SKU.
    pub reference: Option<String>,
}

/// The product of an item.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Product {
    /// EAN.
    #[serde(deserialize_with = "opt_id")]
    pub ean: Option<String>,
    /// Title.
    pub title: Option<String>,
}

/// Carrier and tracking of a shipment.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Transport {
    /// bol's transport id.
    #[serde(deserialize_with = "opt_id")]
    pub transport_id: Option<String>,
    /// Carrier code, e.g. `TNT`.
    pub transporter_code: Option<String>,
    /// Track-and-trace code.
    pub track_and_trace: Option<String>,
    /// Shipping label id.
    #[serde(deserialize_with = "opt_id")]
    pub shipping_label_id: Option<String>,
    /// Tracking events, oldest first.
    #[serde(deserialize_with = "null_as_default")]
    pub transport_events: Vec<TransportEvent>,
}

/// One tracking event.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TransportEvent {
    /// E.g. `AT_TRANSPORTER`, `DELIVERED_AT_CUSTOMER`.
    pub event_code: Option<String>,
    /// When it happened.
    #[serde(deserialize_with = "date_time")]
    pub event_date_time: Option<OffsetDateTime>,
}

/// A shipment detail together with the JSON bol sent, which Simba stores as is.
#[derive(Clone, Debug, PartialEq)]
pub struct ShipmentDetail {
    /// The parsed shipment.
    pub shipment: Shipment,
    /// The body exactly as received.
    pub raw: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdRepr {
    Text(String),
    Unsigned(u64),
    Signed(i64),
}

impl From<IdRepr> for String {
    fn from(id: IdRepr) -> String {
        match id {
            IdRepr::Text(s) => s,
            IdRepr::Unsigned(n) => n.to_string(),
            IdRepr::Signed(n) => n.to_string(),
        }
    }
}

/// Longest shipment id accepted: Simba keeps them in a `VARCHAR(64)`.
pub const MAX_SHIPMENT_ID_LEN: usize = 64;

/// A shipment id goes into a URL path and a database key, so unless it is 1 to
/// [`MAX_SHIPMENT_ID_LEN`] ASCII letters, digits, `-` or `_` (bol's are digits) it fails the
/// whole answer: an empty id or `..` would fetch another resource than the shipment.
fn shipment_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id = String::from(IdRepr::deserialize(d)?);
    let usable = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if id.is_empty() || id.len() > MAX_SHIPMENT_ID_LEN || !id.bytes().all(usable) {
        return Err(D::Error::custom(format!("unusable shipmentId {id:?}")));
    }
    Ok(id)
}

fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<IdRepr>::deserialize(d)?.map(String::from))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn date_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()))
}

fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.and_then(|t| Date::parse(&t, format_description!("[year]-[month]-[day]")).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const LIST: &str = r#"{"shipments":[
 {"shipmentId":"1389204715","shipmentDateTime":"2025-11-21T16:42:10+01:00","shipmentReference":"PK-88213",
  "order":{"orderId":"4217730954","orderPlacedDateTime":"2025-11-20T21:03:55+01:00"},
  "shipmentItems":[{"orderItemId":"3398125570","ean":"8712345678906"}],
  "transport":{"transportId":"402911377"}},
 {"shipmentId":"1389198802","shipmentDateTime":"2025-11-21T11:05:37+01:00","shipmentReference":"PK-88207",
  "order":{"orderId":"4217701120","orderPlacedDateTime":"2025-11-20T09:14:02+01:00"},
  "shipmentItems":[{"orderItemId":"3398077001","ean":"5410013101703"}],"transport":{"transportId":"402907650"}}]}"#;

    const DETAIL: &str = r#"{"shipmentId":"1389204715","shipmentDateTime":"2025-11-21T16:42:10+01:00","shipmentReference":"PK-88213","pickupPoint":false,
 "order":{"orderId":"4217730954","orderPlacedDateTime":"2025-11-20T21:03:55+01:00"},
 "shipmentDetails":{"salutation":"FEMALE","firstName":"Sanne","surname":"de Vries","streetName":"Oudegracht","houseNumber":"112",
  "houseNumberExtension":"A","zipCode":"3511AW","city":"Utrecht","countryCode":"NL","email":"2xq7c9k1m@verkopen.bol.com","language":"nl"},
 "billingDetails":{"salutation":"FEMALE","firstName":"Sanne","surname":"de Vries","streetName":"Oudegracht","houseNumber":"112",
  "houseNumberExtension":"A","zipCode":"3511AW","city":"Utrecht","countryCode":"NL","email":"2xq7c9k1m@verkopen.bol.com"},
 "shipmentItems":[{"orderItemId":"3398125570","fulfilment":{"method":"FBR","distributionParty":"RETAILER","latestDeliveryDate":"2025-11-24"},
  "offer":{"offerId":"b1e0c6a2-5d4f-4c1e-9a77-3f2d8e6b1c90","reference":"SKU-7781"},"product":{"ean":"8712345678906","title":"Theepot glas 1,2 L"},
  "quantity":2,"quantityShipped":2,"unitPrice":24.95,"commission":4.12}],
 "transport":{"transportId":"402911377","transporterCode":"TNT","trackAndTrace":"3SABCD1234567",
  "transportEvents":[{"eventCode":"AT_TRANSPORTER","eventDateTime":"2025-11-21T18:20:00+01:00"}]}}"#;

    #[test]
    fn a_list_page_from_the_facts_file_parses() {
        let page: ShipmentPage = serde_json::from_str(LIST).unwrap();
        assert_eq!(page.shipments.len(), 2);
        let first = &page.shipments[0];
        assert_eq!(first.shipment_id, "1389204715");
        assert_eq!(
            first.shipment_date_time,
            Some(datetime!(2025-11-21 16:42:10 +01:00))
        );
        assert_eq!(
            first.order.as_ref().unwrap().order_id.as_deref(),
            Some("4217730954")
        );
        assert_eq!(
            first.shipment_items[0].ean.as_deref(),
            Some("8712345678906")
        );
        assert_eq!(
            first.transport.as_ref().unwrap().transport_id.as_deref(),
            Some("402911377")
        );
        assert!(page.is_last());
    }

    #[test]
    fn an_empty_object_is_an_empty_last_page() {
        let page: ShipmentPage = serde_json::from_str("{ }").unwrap();
        assert!(page.shipments.is_empty());
        assert!(page.is_last());
        let page: ShipmentPage = serde_json::from_str(r#"{"shipments":null}"#).unwrap();
        assert!(page.shipments.is_empty());
    }

    #[test]
    fn a_detail_from_the_facts_file_parses() {
        let s: Shipment = serde_json::from_str(DETAIL).unwrap();
        assert_eq!(s.shipment_id, "1389204715");
        assert_eq!(s.pickup_point, Some(false));
        let details = s.shipment_details.unwrap();
        assert_eq!(details.city.as_deref(), Some("Utrecht"));
        assert_eq!(details.delivery_phone_number, None);
        assert_eq!(s.billing_details.unwrap().vat_number, None);
        let item = &s.shipment_items[0];
        let fulfilment = item.fulfilment.as_ref().unwrap();
        assert_eq!(fulfilment.method.as_deref(), Some("FBR"));
        assert_eq!(fulfilment.latest_delivery_date, Some(date!(2025 - 11 - 24)));
        assert_eq!(item.quantity, Some(2));
        assert_eq!(item.quantity_shipped, Some(2));
        assert_eq!(item.unit_price, Some(24.95));
        assert_eq!(item.commission, Some(4.12));
        assert_eq!(
            item.product.as_ref().unwrap().title.as_deref(),
            Some("Theepot glas 1,2 L")
        );
        let transport = s.transport.unwrap();
        assert_eq!(transport.track_and_trace.as_deref(), Some("3SABCD1234567"));
        assert_eq!(
            transport.transport_events[0].event_date_time,
            Some(datetime!(2025-11-21 18:20:00 +01:00))
        );
    }

    #[test]
    fn numeric_ids_become_strings() {
        let s: Shipment = serde_json::from_str(
            r#"{"shipmentId":914587795,"order":{"orderId":4123456789},
                "shipmentItems":[{"orderItemId":2012345678,"product":{"ean":8712345678906}}]}"#,
        )
        .unwrap();
        assert_eq!(s.shipment_id, "914587795");
        assert_eq!(s.order.unwrap().order_id.as_deref(), Some("4123456789"));
        assert_eq!(
            s.shipment_items[0].order_item_id.as_deref(),
            Some("2012345678")
        );
    }

    #[test]
    fn only_the_shipment_id_is_required() {
        let s: Shipment = serde_json::from_str(r#"{"shipmentId":"1"}"#).unwrap();
        assert_eq!(s.shipment_reference, None);
        assert!(s.shipment_items.is_empty());
        assert_eq!(s.transport, None);
        assert!(serde_json::from_str::<Shipment>(r#"{"shipmentReference":"x"}"#).is_err());
    }

    #[test]
    fn a_shipment_id_unfit_for_a_url_or_the_database_fails_the_answer() {
        let too_long = "1".repeat(MAX_SHIPMENT_ID_LEN + 1);
        for id in [
            "",
            ".",
            "..",
            "a/b",
            "1389`300001",
            "12 34",
            too_long.as_str(),
        ] {
            let page = format!(r#"{{"shipments":[{{"shipmentId":{id:?}}}]}}"#);
            assert!(
                serde_json::from_str::<ShipmentPage>(&page).is_err(),
                "list accepted {id:?}"
            );
            let detail = format!(r#"{{"shipmentId":{id:?}}}"#);
            assert!(
                serde_json::from_str::<Shipment>(&detail).is_err(),
                "detail accepted {id:?}"
            );
        }
        let longest = "9".repeat(MAX_SHIPMENT_ID_LEN);
        for id in ["1389204715", "A-1_b", longest.as_str()] {
            let s: Shipment = serde_json::from_str(&format!(r#"{{"shipmentId":{id:?}}}"#)).unwrap();
            assert_eq!(s.shipment_id, id);
        }
    }

    #[test]
    fn unknown_fields_and_odd_dates_are_ignored() {
        let s: ReducedShipment = serde_json::from_str(
            r#"{"shipmentId":"7","shipmentDateTime":"yesterday","brandNewField":{"a":[1,2]},
                "order":{"orderId":"9","channel":"app"}}"#,
        )
        .unwrap();
        assert_eq!(s.shipment_date_time, None);
        assert_eq!(s.order.unwrap().order_id.as_deref(), Some("9"));
    }
}
