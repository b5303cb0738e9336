//! The one outbound HTTP client every provider call goes through, and reading bodies with a cap.

use std::time::Duration;

/// The one HTTP client: connect and total timeouts, and no redirects (a redirect from a token
/// or API endpoint is refused, never followed: SSRF and token leaks, RFC 9700 §4.11).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        // No proxy from HTTP(S)_PROXY / ALL_PROXY: nobody configured one for this app on
        // purpose, and a proxy sees every bearer token and client secret we send.
        .no_proxy()
        .user_agent(concat!("qentrah-connect/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a capped read failed.
#[derive(Debug, thiserror::Error)]
pub enum CappedReadError {
    #[error("the answer is too large")]
    TooLarge,
    #[error("the body could not be read{}", if .0.is_timeout() { " in time" } else { "" })]
    Transport(reqwest::Error),
}

/// Reads a body of at most `limit` bytes, refusing a larger one as soon as it shows (its
/// `Content-Length`, or the bytes so far), so an endless body costs at most `limit`.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CappedReadError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(CappedReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CappedReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(CappedReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No proxy is taken from the environment: with `HTTP_PROXY` and `ALL_PROXY` pointing at
    /// a closed port, a call still goes straight to its server. (Each test runs in its own
    /// process under nextest, so the variables touch no other test.)
    #[tokio::test]
    async fn no_proxy_is_taken_from_the_environment() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "direct" }));
            axum::serve(listener, app).await.unwrap();
        });
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::set_var(name, "http://127.0.0.1:9");
        }
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
        let client = http_client(Duration::from_secs(5)).unwrap();
        let body = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "direct");
    }
}
