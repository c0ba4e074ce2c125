//! `GET /retailer/shipments/{id}` bodies: as the list, and the raw JSON kept is the body itself.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Some(detail) = common::checked(body, bol::parse::shipment_detail(body)) {
        assert_eq!(detail.raw.as_bytes(), body, "raw differs from the body");
        common::assert_usable_shipment_id(&detail.shipment.shipment_id);
    }
});
