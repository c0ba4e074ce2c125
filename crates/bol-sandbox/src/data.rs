//! Shipment data drawn on demand from (seed, account, method, index): the v10 detail and its
//! reduced list form, with the optional fields and non-ASCII text real data has.

use crate::{clock, ids::Key, prng::Rng};
use serde::Serialize;

/// Everything needed to draw one shipment, besides its key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Draw<'a> {
    pub seed: u64,
    pub ids: &'a crate::state::Codecs,
    /// When the shipment was shipped, Unix seconds.
    pub shipped: i64,
    /// Marketplace now: transport events later than this have not happened yet.
    pub now: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Shipment {
    shipment_id: String,
    shipment_date_time: String,
    shipment_reference: String,
    pickup_point: bool,
    order: Order,
    shipment_details: Address,
    #[serde(skip_serializing_if = "Option::is_none")]
    billing_details: Option<Billing>,
    shipment_items: Vec<Item>,
    transport: Transport,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    order_placed_date_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pickup_point_name: Option<&'static str>,
    salutation: &'static str,
    first_name: &'static str,
    surname: &'static str,
    street_name: &'static str,
    house_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    house_number_extension: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_address_information: Option<&'static str>,
    zip_code: String,
    city: &'static str,
    country_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    company: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_phone_number: Option<String>,
    language: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Billing {
    salutation: &'static str,
    first_name: &'static str,
    surname: &'static str,
    street_name: &'static str,
    house_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    house_number_extension: Option<&'static str>,
    zip_code: String,
    city: &'static str,
    country_code: &'static str,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    company: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vat_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kvk_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_reference: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    order_item_id: String,
    fulfilment: Fulfilment,
    offer: Offer,
    product: Product,
    quantity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity_shipped: Option<u32>,
    unit_price: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    commission: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fulfilment {
    method: &'static str,
    distribution_party: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_delivery_date: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    offer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

#[derive(Serialize)]
struct Product {
    ean: String,
    title: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Transport {
    transport_id: String,
    transporter_code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_and_trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_label_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transport_events: Vec<Event>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_code: &'static str,
    event_date_time: String,
    /// `event_date_time` as Unix seconds, for pushing transport changes when they happen.
    #[serde(skip)]
    at: i64,
}

/// The list entry (`ReducedShipment`), borrowing from a drawn detail.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Reduced<'a> {
    shipment_id: &'a str,
    shipment_date_time: &'a str,
    shipment_reference: &'a str,
    order: &'a Order,
    shipment_items: Vec<ReducedItem<'a>>,
    transport: ReducedTransport<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReducedItem<'a> {
    order_item_id: &'a str,
    ean: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReducedTransport<'a> {
    transport_id: &'a str,
}

impl Shipment {
    /// When its transport events happen, in order: only those up to the draw's `now`, so a
    /// shipment drawn with `now: i64::MAX` tells the ones still to come too.
    pub(crate) fn transport_times(&self) -> impl Iterator<Item = i64> + '_ {
        self.transport.transport_events.iter().map(|e| e.at)
    }

    pub(crate) fn reduced(&self) -> Reduced<'_> {
        Reduced {
            shipment_id: &self.shipment_id,
            shipment_date_time: &self.shipment_date_time,
            shipment_reference: &self.shipment_reference,
            order: &self.order,
            shipment_items: self
                .shipment_items
                .iter()
                .map(|i| ReducedItem {
                    order_item_id: &i.order_item_id,
                    ean: &i.product.ean,
                })
                .collect(),
            transport: ReducedTransport {
                transport_id: &self.transport.transport_id,
            },
        }
    }
}

const FIRST_NAMES: &[(&str, &str)] = &[
    ("Sanne", "FEMALE"),
    ("Daan", "MALE"),
    ("Zoë", "FEMALE"),
    ("Jérôme", "MALE"),
    ("Anaïs", "FEMALE"),
    ("Björn", "MALE"),
    ("Émilie", "FEMALE"),
    ("Noé", "MALE"),
    ("Lotte", "FEMALE"),
    ("François", "MALE"),
    ("Søren", "MALE"),
    ("Chloë", "FEMALE"),
    ("Kim", "UNKNOWN"),
    ("Maëlle", "FEMALE"),
    ("Thijs", "MALE"),
];
const SURNAMES: &[&str] = &[
    "de Vries",
    "Jansen",
    "Müller",
    "Dubois",
    "Van den Broeck",
    "Peeters",
    "Lefèvre",
    "Çelik",
    "Smit",
    "Bakker",
    "Janssens",
    "van 't Hof",
    "Nguyễn",
    "El Amrani",
    "Wouters",
];
/// Street, city, postcode scheme, country, languages.
const PLACES: &[(&str, &str, bool, &str, &[&str])] = &[
    ("Oudegracht", "Utrecht", true, "NL", &["nl"]),
    ("Kerkstraat", "Amsterdam", true, "NL", &["nl"]),
    ("Stationsweg", "'s-Hertogenbosch", true, "NL", &["nl"]),
    ("Laan van Meerdervoort", "Den Haag", true, "NL", &["nl"]),
    ("Veldstraat", "Gent", false, "BE", &["nl-BE"]),
    (
        "Place Saint-Lambert",
        "Liège",
        false,
        "BE",
        &["fr-BE", "fr"],
    ),
    (
        "Chaussée de Waterloo",
        "Bruxelles",
        false,
        "BE",
        &["fr-BE", "nl-BE"],
    ),
    ("Meir", "Antwerpen", false, "BE", &["nl-BE"]),
];
const PICKUP_POINTS: &[&str] = &[
    "Albert Heijn: UTRECHT",
    "PostNL punt: Primera Amsterdam",
    "bpost punt: GENT",
];
const EXTRA_INFO: &[&str] = &["Appartement 3", "Achterom, blauwe deur", "Boîte 2"];
const COMPANIES: &[&str] = &["Bakkerij Öztürk B.V.", "Café de Ster", "Atelier Crème"];
const PRODUCTS: &[&str] = &[
    "Theepot glas 1,2 L",
    "Koffiemolen – handmatig",
    "Crème solaire SPF 50",
    "Gezelschapsspel ‘Zeeslag’",
    "Kinderfiets 16 inch",
    "Boek: De ontdekking van de hemel",
    "Écouteurs sans fil",
    "Snoeischaar 20 cm",
    "LEGO® bouwset 1.200 stuks",
    "Sokken 5-pack maat 39–42",
];
const TRANSPORTERS_FBR: &[&str] = &["TNT", "DHL", "DPD-NL", "BPOST_BE", "DHLFORYOU", "GLS"];
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn chars(rng: &mut Rng, set: &[u8], n: usize) -> String {
    (0..n).map(|_| char::from(rng.pick(set))).collect()
}

fn digits(rng: &mut Rng, n: u32) -> String {
    format!("{:0width$}", rng.below(10u64.pow(n)), width = n as usize)
}

/// An EAN-13 with a valid check digit.
fn ean(rng: &mut Rng) -> String {
    let body = format!("87{}", digits(rng, 10));
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn money(cents: u64) -> f64 {
    cents as f64 / 100.0
}

/// Draws one shipment. Pure: the same inputs give the same shipment.
pub(crate) fn shipment(key: Key, draw: Draw<'_>) -> Shipment {
    let mut rng = Rng::new(draw.seed ^ key.raw().wrapping_mul(0x2545_f491_4f6c_dd1d));
    let shipped = draw.shipped;
    let placed = shipped - rng.range(600, 3 * 86_400) as i64;

    let (first_name, salutation) = rng.pick(FIRST_NAMES);
    let surname = rng.pick(SURNAMES);
    let (street, city, dutch_zip, country, languages) = rng.pick(PLACES);
    let zip = if dutch_zip {
        format!(
            "{}{}",
            rng.range(1000, 9999),
            chars(&mut rng, b"ABCDEFGHJKLMNPRSTVWXZ", 2)
        )
    } else {
        rng.range(1000, 9999).to_string()
    };
    let house_number = rng.range(1, 250).to_string();
    let extension = rng
        .chance(0.2)
        .then(|| rng.pick(&["A", "B", "bis", "2hoog"]));
    let pickup_point = rng.chance(0.1);
    let business = rng.chance(0.1);
    let company = business.then(|| rng.pick(COMPANIES));
    let email = format!("{}@verkopen.bol.com", chars(&mut rng, ALNUM, 9));

    let shipment_details = Address {
        pickup_point_name: pickup_point.then(|| rng.pick(PICKUP_POINTS)),
        salutation,
        first_name,
        surname,
        street_name: street,
        house_number: house_number.clone(),
        house_number_extension: extension,
        extra_address_information: rng.chance(0.1).then(|| rng.pick(EXTRA_INFO)),
        zip_code: zip.clone(),
        city,
        country_code: country,
        email: rng.chance(0.9).then(|| email.clone()),
        company,
        delivery_phone_number: rng
            .chance(0.15)
            .then(|| format!("06{}", digits(&mut rng, 8))),
        language: rng.pick(languages),
    };
    let billing_details = rng.chance(0.95).then(|| Billing {
        salutation,
        first_name,
        surname,
        street_name: street,
        house_number,
        house_number_extension: extension,
        zip_code: zip,
        city,
        country_code: country,
        email,
        company,
        vat_number: business.then(|| format!("{country}{}B01", digits(&mut rng, 9))),
        kvk_number: business.then(|| digits(&mut rng, 8)),
        order_reference: rng
            .chance(0.1)
            .then(|| format!("PO-{}", digits(&mut rng, 5))),
    });

    let (method, party) = if key.fbb {
        ("FBB", "BOL")
    } else {
        ("FBR", "RETAILER")
    };
    let shipment_items = (0..rng.range(1, 3))
        .map(|_| {
            let quantity = if rng.chance(0.8) {
                1
            } else {
                rng.range(2, 5) as u32
            };
            let price = rng.range(199, 19_999);
            Item {
                order_item_id: (3_000_000_000_000 + (rng.next_u64() % 1_000_000_000_000))
                    .to_string(),
                fulfilment: Fulfilment {
                    method,
                    distribution_party: party,
                    latest_delivery_date: rng
                        .chance(0.9)
                        .then(|| clock::date(shipped + rng.range(1, 3) as i64 * 86_400)),
                },
                offer: Offer {
                    offer_id: uuid(&mut rng),
                    reference: rng
                        .chance(0.7)
                        .then(|| format!("SKU-{}", digits(&mut rng, 4))),
                },
                product: Product {
                    ean: ean(&mut rng),
                    title: rng.pick(PRODUCTS),
                },
                quantity,
                quantity_shipped: rng.chance(0.9).then_some(quantity),
                unit_price: money(price),
                commission: rng.chance(0.95).then(|| money(price * 15 / 100 + 50)),
            }
        })
        .collect();

    let transporter = if key.fbb {
        "TNT"
    } else {
        rng.pick(TRANSPORTERS_FBR)
    };
    let mut at = shipped;
    let mut codes = vec!["PRE_ANNOUNCED", "AT_TRANSPORTER", "IN_TRANSIT"];
    codes.extend(if pickup_point {
        ["AT_PICK_UP_POINT", "PICKED_UP_AT_PICK_UP_POINT"].as_slice()
    } else if rng.chance(0.1) {
        ["DELIVERED_AT_NEIGHBOURS"].as_slice()
    } else {
        ["DELIVERED_AT_CUSTOMER"].as_slice()
    });
    // Every event's time is drawn whatever `now` is, so that the fields drawn after them stay
    // the same as events pass: only the events a shipment shows change.
    let timed: Vec<(&str, i64)> = codes
        .into_iter()
        .map(|event_code| {
            at += rng.range(600, 20 * 3600) as i64;
            (event_code, at)
        })
        .collect();
    let transport_events = timed
        .into_iter()
        .take_while(|&(_, at)| at <= draw.now)
        .map(|(event_code, at)| Event {
            event_code,
            event_date_time: clock::date_time(at),
            at,
        })
        .collect();

    Shipment {
        shipment_id: draw.ids.shipment.encode(key),
        shipment_date_time: clock::date_time(shipped),
        shipment_reference: format!("PK-{}", digits(&mut rng, 6)),
        pickup_point,
        order: Order {
            order_id: draw.ids.order.encode(key),
            order_placed_date_time: clock::date_time(placed),
        },
        shipment_details,
        billing_details,
        shipment_items,
        transport: Transport {
            transport_id: (700_000_000_000 + (rng.next_u64() % 100_000_000_000)).to_string(),
            transporter_code: transporter,
            track_and_trace: rng
                .chance(0.9)
                .then(|| format!("3S{}", chars(&mut rng, UPPER_NUM, 13))),
            shipping_label_id: rng.chance(0.5).then(|| digits(&mut rng, 9)),
            transport_events,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Codecs;

    fn draw(codecs: &Codecs) -> Draw<'_> {
        Draw {
            seed: 9,
            ids: codecs,
            shipped: 1_763_739_730,
            now: 1_763_739_730 + 10 * 86_400,
        }
    }

    #[test]
    fn a_shipment_is_the_same_every_time_it_is_drawn() {
        let codecs = Codecs::new(9);
        let key = Key {
            account: 1,
            fbb: false,
            index: 17,
        };
        let a = serde_json::to_string(&shipment(key, draw(&codecs))).unwrap();
        let b = serde_json::to_string(&shipment(key, draw(&codecs))).unwrap();
        assert_eq!(a, b);
        assert!(a.contains("+01:00"));
    }

    #[test]
    fn only_its_transport_events_change_as_a_shipment_ages() {
        let codecs = Codecs::new(9);
        for index in 0..50 {
            let key = Key {
                account: 1,
                fbb: false,
                index,
            };
            let at = |now| {
                let mut value = serde_json::to_value(shipment(
                    key,
                    Draw {
                        now,
                        ..draw(&codecs)
                    },
                ))
                .unwrap();
                let events = value["transport"]
                    .as_object_mut()
                    .unwrap()
                    .remove("transportEvents");
                (value, events.map_or(0, |e| e.as_array().unwrap().len()))
            };
            let shipped = draw(&codecs).shipped;
            let (fresh, none) = at(shipped);
            let (old, all) = at(shipped + 30 * 86_400);
            assert_eq!((none, all > 2), (0, true));
            assert_eq!(fresh, old, "index {index}");
        }
    }

    #[test]
    fn shipments_have_one_to_three_items_and_valid_eans() {
        let codecs = Codecs::new(9);
        for index in 0..200 {
            let s = shipment(
                Key {
                    account: 0,
                    fbb: index % 2 == 0,
                    index,
                },
                draw(&codecs),
            );
            assert!((1..=3).contains(&s.shipment_items.len()));
            for item in &s.shipment_items {
                let ean = &item.product.ean;
                let sum: u32 = ean
                    .bytes()
                    .enumerate()
                    .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
                    .sum();
                assert_eq!(sum % 10, 0, "{ean}");
            }
        }
    }
}
