//! Whatever the Workspace sends, parsing it never panics: it is records, an organization, an
//! error body, or a specific error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qentrah_connect::server::providers::qentrah::parse_error_body;
use qentrah_connect::server::providers::qentrah::records::{parse_organization, parse_page};

fuzz_target!(|data: &[u8]| {
    let _ = parse_error_body(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(page) = parse_page(&value) {
            for record in page.records {
                assert!(!record.id.is_empty() && !record.name.is_empty());
            }
        }
        let _ = parse_organization(&value);
    }
});
