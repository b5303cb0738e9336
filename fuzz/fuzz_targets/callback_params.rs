//! Whatever arrives on the callback's query string, judging it never panics, and a callback is
//! never sent to the token endpoint without a state and a code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qentrah_connect::server::providers::oauth::authorization::{judge_callback, safe_return_to, CallbackParams, CallbackStep};

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let params = CallbackParams::parse(&query);
    for iss_required in [false, true] {
        if let CallbackStep::Exchange { .. } =
            judge_callback(&params, "http://localhost:3000", iss_required)
        {
            assert!(params.state.as_deref().is_some_and(|s| !s.is_empty()));
            assert!(params.error.is_none());
            assert!(!params.repeated);
            // RFC 9207: never exchanged with a missing or foreign issuer when it is promised.
            if iss_required {
                assert_eq!(
                    params.iss.as_deref().map(|i| i.trim_end_matches('/')),
                    Some("http://localhost:3000")
                );
            }
        }
    }
    let safe = safe_return_to(Some(&query));
    assert!(safe.starts_with('/') && !safe.starts_with("//"));
});
