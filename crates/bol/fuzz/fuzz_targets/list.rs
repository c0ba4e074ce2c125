//! `GET /retailer/shipments` bodies: no panic, only UTF-8 accepted, short error messages, and
//! every shipment id usable in a URL and the database.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Some(page) = common::checked(body, bol::parse::shipment_page(body)) {
        for shipment in &page.shipments {
            common::assert_usable_shipment_id(&shipment.shipment_id);
        }
    }
});
