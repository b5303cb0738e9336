use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// What went wrong, phrased as what the UI should do. Never carries internals: the server logs
/// the cause and sends only this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No connection for this browser: offer "Authorize with Qentrah".
    #[error("not connected to Qentrah")]
    NotConnected,
    /// The connection no longer works: offer "Reconnect to Qentrah".
    #[error("the connection to Qentrah must be renewed")]
    ReconnectRequired,
    /// The app was uninstalled from the organization's Workspace: only a Workspace admin's new
    /// install helps; reconnecting would not.
    #[error("Qentrah Connect was uninstalled from this Workspace")]
    Uninstalled,
    /// `app_not_approved`: a Qentrah Workspace admin must approve the app.
    #[error("a Qentrah Workspace admin must approve this app")]
    AskWorkspaceAdmin,
    /// `scope_denied`: the connection lacks access; offer to authorize again.
    #[error("the connection lacks access")]
    ScopeDenied { scope: Option<String> },
    /// `wrong_organization`: offer to connect the right organization.
    #[error("the connection is for another organization")]
    WrongOrganization,
    /// Qentrah is unavailable, slow or answered nonsense: offer Retry.
    #[error("Qentrah is unavailable")]
    Retry,
    /// Something failed on our side; retrying may help.
    #[error("something went wrong on our side")]
    Internal,
    /// `AUTH_MODE=sso`: this needs a signed-in Workspace user: offer "Sign in".
    #[error("sign in first")]
    LoginRequired,
    /// `AUTH_MODE=sso`: only a Workspace admin may do this.
    #[error("only Workspace admins can do this")]
    AdminOnly,
    /// `AUTH_MODE=sso`: the organization has no connection, and only an admin can make one.
    #[error("a Workspace admin must connect Qentrah Connect")]
    AdminMustConnect,
    /// The request itself failed before reaching the server function (network, encoding).
    #[error("the request failed")]
    Request,
}

impl AppError {
    /// The HTTP status this error answers with, set here and nowhere else: the caller's state
    /// is a 4xx, the Workspace's trouble a 503, only our own failure a 500.
    #[cfg(feature = "ssr")]
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::NotConnected | AppError::ReconnectRequired | AppError::LoginRequired => {
                StatusCode::UNAUTHORIZED
            }
            AppError::AdminOnly | AppError::AdminMustConnect => StatusCode::FORBIDDEN,
            AppError::AskWorkspaceAdmin
            | AppError::Uninstalled
            | AppError::ScopeDenied { .. }
            | AppError::WrongOrganization => StatusCode::FORBIDDEN,
            AppError::Retry => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Request => StatusCode::BAD_REQUEST,
        }
    }

    /// Logs `cause` (with its chain) and returns the safe [`AppError::Internal`].
    #[cfg(feature = "ssr")]
    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %crate::server::Causes(cause), "{context}");
        AppError::Internal
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(_value: ServerFnErrorErr) -> Self {
        AppError::Request
    }
}
