//! Whatever a webhook delivery carries (headers and body), verifying it never panics, a body
//! is parsed only after its signature held, and parsing any body never panics or echoes a
//! secret into its error.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use qentrah_connect::server::installations::payload;
use qentrah_connect::server::installations::signature::{sign, verify, DeliveryHeaders};
use qentrah_connect::server::platform::config::WebhookSecret;

fuzz_target!(|data: &[u8]| {
    let Some(secret) = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD") else {
        return;
    };
    // The input: three header lines, then the body.
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let id = parts.next().map(String::from_utf8_lossy);
    let timestamp = parts.next().map(String::from_utf8_lossy);
    let signature = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();
    let now = UNIX_EPOCH + Duration::from_secs(1_649_367_553);
    let headers = DeliveryHeaders {
        id: id.as_deref(),
        timestamp: timestamp.as_deref(),
        signature: signature.as_deref(),
    };
    if verify(&headers, body, std::slice::from_ref(&secret), now, Duration::from_secs(300)).is_ok() {
        // Only a body signed with the secret gets here: the fuzzer cannot forge one.
        let (Some(id), Some(timestamp)) = (headers.id, headers.timestamp) else {
            panic!("verified without an id or timestamp");
        };
        let timestamp: i64 = timestamp.trim().parse().unwrap_or_default();
        assert!(headers.signature.unwrap_or_default().contains(&sign(&secret, id, timestamp, body)));
    }
    // What a signed body may hold, parsed: never a panic, and an error names a field only.
    if let Err(error) = payload::parse(body) {
        assert_eq!(
            error.to_string(),
            format!("the payload's {} is missing or invalid", error.field)
        );
    }
});
