//! View models and ids: what the browser may know. Serializable, and free of secrets by
//! construction (nothing here can hold a token).

use serde::{Deserialize, Serialize};

/// Whether the browser's connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    Connected,
    /// The Workspace refused the stored grant; only a new authorization helps.
    ReconnectRequired,
    /// The app was uninstalled from the Workspace: only a new install helps.
    Uninstalled,
}

/// The browser's connection, as the Connection page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub organization_id: String,
    pub state: ConnectionState,
    /// What the Workspace granted (RFC 6749 §3.3: possibly less than was asked for).
    pub scopes: Vec<String>,
    /// What this app asks for and the grant lacks.
    pub missing_scopes: Vec<String>,
    /// Unix seconds.
    pub connected_at: i64,
    /// Unix seconds of the last token refresh, if any.
    pub refreshed_at: Option<i64>,
}

/// The organization's profile (`me`), as much of it as the UI shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    pub plan: Option<String>,
    pub country: Option<String>,
    pub timezone: Option<String>,
    pub billing_email: Option<String>,
}

/// A client or property as the lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    pub id: String,
    pub name: String,
    /// An e-mail for a client, a kind for a property.
    pub detail: Option<String>,
    pub status: Option<String>,
    /// "City, Country".
    pub location: Option<String>,
}

/// The organization's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ListKind {
    Clients,
    Properties,
}

/// One page of a list as a page of this app shows it: the records, and the cursor of the
/// next page if there is one (an opaque value the Workspace issued: not a secret, and the
/// Workspace checks it belongs to this organization's list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPage {
    pub records: Vec<RecordView>,
    pub next_cursor: Option<String>,
    /// The whole list's length, when the Workspace says.
    pub total: Option<u64>,
}

impl RecordPage {
    /// "12", "240", or "100+" when only the first page is known.
    pub fn count_label(&self) -> String {
        match (self.total, &self.next_cursor) {
            (Some(total), _) => total.to_string(),
            (None, None) => self.records.len().to_string(),
            (None, Some(_)) => format!("{}+", self.records.len()),
        }
    }

    /// Whether these records are the whole list.
    pub fn is_complete(&self) -> bool {
        self.next_cursor.is_none()
    }
}

/// Everything the overview page shows, loaded in one concurrent round trip: the profile, and
/// the first page of each list (never the whole of a list that may hold thousands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardView {
    pub organization: OrganizationView,
    pub clients: RecordPage,
    pub properties: RecordPage,
}

/// Why a connection attempt ended without a connection; the callback redirects to
/// `/connect/failed?reason=…` with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectFailure {
    /// The person (or the Workspace) declined.
    AccessDenied,
    /// The answer belongs to no flow this browser started (expired, replayed or forged).
    UnknownFlow,
    /// The answer came from another issuer than the configured Workspace (RFC 9207).
    WrongIssuer,
    /// The answer was malformed.
    InvalidResponse,
    /// The Workspace connected no organization (no `organization_id`).
    MissingOrganization,
    /// The Workspace refused to exchange the code.
    ExchangeRefused,
    /// The Workspace could not be reached; try again.
    Unavailable,
    /// The Workspace refused this app's registration; an admin must fix configuration.
    Misconfigured,
    /// The Workspace says this app is not approved (`unauthorized_client`): a Workspace admin
    /// must approve it; trying again will not help until then.
    NotApproved,
    /// The flow was started with an installation's client and the app was uninstalled from
    /// the Workspace meanwhile.
    Uninstalled,
    /// The Workspace connected another organization than the installation's the flow was for.
    WrongOrganization,
}

impl ConnectFailure {
    pub const ALL: [ConnectFailure; 11] = [
        ConnectFailure::AccessDenied,
        ConnectFailure::UnknownFlow,
        ConnectFailure::WrongIssuer,
        ConnectFailure::InvalidResponse,
        ConnectFailure::MissingOrganization,
        ConnectFailure::ExchangeRefused,
        ConnectFailure::Unavailable,
        ConnectFailure::Misconfigured,
        ConnectFailure::NotApproved,
        ConnectFailure::Uninstalled,
        ConnectFailure::WrongOrganization,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectFailure::AccessDenied => "access_denied",
            ConnectFailure::UnknownFlow => "unknown_flow",
            ConnectFailure::WrongIssuer => "wrong_issuer",
            ConnectFailure::InvalidResponse => "invalid_response",
            ConnectFailure::MissingOrganization => "missing_organization",
            ConnectFailure::ExchangeRefused => "exchange_refused",
            ConnectFailure::Unavailable => "unavailable",
            ConnectFailure::Misconfigured => "misconfigured",
            ConnectFailure::NotApproved => "not_approved",
            ConnectFailure::Uninstalled => "uninstalled",
            ConnectFailure::WrongOrganization => "wrong_organization",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }

    /// A heading and an explanation for the person.
    pub fn explain(self) -> (&'static str, &'static str) {
        match self {
            ConnectFailure::AccessDenied => (
                "Access was not granted",
                "The request was declined in Qentrah, so nothing was connected. You can try again and approve the access.",
            ),
            ConnectFailure::UnknownFlow => (
                "This sign-in link has expired",
                "The answer from Qentrah did not match a connection started from this browser in the last ten minutes. Start again from here.",
            ),
            ConnectFailure::WrongIssuer => (
                "The answer came from the wrong place",
                "The response did not come from the configured Qentrah Workspace, so it was ignored for your safety. Start again.",
            ),
            ConnectFailure::InvalidResponse => (
                "Qentrah sent an answer we could not use",
                "Nothing was connected. Start again; if it keeps happening, contact support.",
            ),
            ConnectFailure::MissingOrganization => (
                "No organization was connected",
                "Qentrah did not say which organization you connected, so nothing was stored. Try again and pick an organization.",
            ),
            ConnectFailure::ExchangeRefused => (
                "Qentrah refused to complete the connection",
                "The approval could not be redeemed (it may have been used already). Start again.",
            ),
            ConnectFailure::Unavailable => (
                "Qentrah is unavailable",
                "Qentrah could not be reached to complete the connection. Nothing was lost; try again in a moment.",
            ),
            ConnectFailure::Misconfigured => (
                "This app's Qentrah registration needs attention",
                "Qentrah refused this app's credentials. Ask the person who runs this app to check its Qentrah client settings.",
            ),
            ConnectFailure::NotApproved => (
                "A Qentrah Workspace admin must approve this app",
                "Your Qentrah Workspace has not approved this app yet, so nothing was connected. Ask a Workspace admin to approve it, then connect again.",
            ),
            ConnectFailure::Uninstalled => (
                "Qentrah Connect was uninstalled from this Workspace",
                "A Workspace admin removed this app while you were connecting, so nothing was connected. An admin can install it again from the Workspace's marketplace.",
            ),
            ConnectFailure::WrongOrganization => (
                "Another organization was connected",
                "This connection was started for one organization's installation, and Qentrah connected a different one, so nothing was stored. Start again from the right organization.",
            ),
        }
    }
}

/// The signed-in Workspace user (`AUTH_MODE=sso`), as the header and the pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub name: String,
    pub email: String,
    pub organization_id: String,
    pub organization_name: String,
    /// `admin` or `member`.
    pub role: String,
}

impl SessionUser {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// A user of the organization, as `/admin/users` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub email: String,
    /// The Workspace's role, and this app's (`None`: a role the map does not know).
    pub workspace_role: String,
    pub app_role: Option<String>,
    /// Unix seconds.
    pub last_sign_in_at: i64,
}

/// Why a sign-in ended without one, or a session ended; `/login?reason=…` shows one of these,
/// each with a fixed text (the Workspace's own error text is never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignInFailure {
    /// The person cancelled at the Workspace (`access_denied`).
    Cancelled,
    /// The Workspace answered with another error.
    Failed,
    /// The answer came from another issuer (RFC 9207).
    WrongIssuer,
    /// The answer matches no sign-in this browser started (or a bounce was refused).
    InvalidState,
    /// The Workspace's ID token or UserInfo could not be trusted.
    Untrusted,
    /// The Workspace could not be reached.
    Unavailable,
    /// A page needs a signed-in user.
    LoginRequired,
    /// The session reached SESSION_ABSOLUTE_SECS.
    SessionExpired,
    /// The Workspace no longer lists the user in the organization (or disabled them).
    Removed,
    /// The Workspace could not confirm the user for longer than the grace period.
    RecheckFailed,
}

impl SignInFailure {
    pub const ALL: [SignInFailure; 10] = [
        SignInFailure::Cancelled,
        SignInFailure::Failed,
        SignInFailure::WrongIssuer,
        SignInFailure::InvalidState,
        SignInFailure::Untrusted,
        SignInFailure::Unavailable,
        SignInFailure::LoginRequired,
        SignInFailure::SessionExpired,
        SignInFailure::Removed,
        SignInFailure::RecheckFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignInFailure::Cancelled => "cancelled",
            SignInFailure::Failed => "failed",
            SignInFailure::WrongIssuer => "wrong_issuer",
            SignInFailure::InvalidState => "invalid_state",
            SignInFailure::Untrusted => "untrusted",
            SignInFailure::Unavailable => "unavailable",
            SignInFailure::LoginRequired => "login_required",
            SignInFailure::SessionExpired => "session_expired",
            SignInFailure::Removed => "removed",
            SignInFailure::RecheckFailed => "recheck_failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }

    /// What `/login` says for it.
    pub fn explain(self) -> &'static str {
        match self {
            SignInFailure::Cancelled => "Sign-in was cancelled.",
            SignInFailure::Failed => "Sign-in did not complete. Open the app from your Workspace again.",
            SignInFailure::WrongIssuer => "The sign-in answer did not come from the configured Qentrah Workspace, so it was ignored for your safety.",
            SignInFailure::InvalidState => "This sign-in link was not started from this browser, or it has expired. Open the app from your Workspace again.",
            SignInFailure::Untrusted => "Your Workspace's answer could not be verified, so you were not signed in. Open the app from your Workspace again; if it keeps happening, contact support.",
            SignInFailure::Unavailable => "Your Qentrah Workspace could not be reached. Nothing was lost; try again in a moment.",
            SignInFailure::LoginRequired => "Sign in to see this page.",
            SignInFailure::SessionExpired => "Your session ended. Open the app from your Workspace to sign in again.",
            SignInFailure::Removed => "Your Workspace no longer lists you in this organization, so you were signed out.",
            SignInFailure::RecheckFailed => "Your Workspace could not confirm your access for a while, so you were signed out. Open the app again when it is reachable.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_failures_round_trip() {
        for failure in SignInFailure::ALL {
            assert_eq!(SignInFailure::parse(failure.as_str()), Some(failure));
        }
        assert_eq!(SignInFailure::parse("<script>"), None);
    }

    #[test]
    fn connect_failures_round_trip() {
        for failure in ConnectFailure::ALL {
            assert_eq!(ConnectFailure::parse(failure.as_str()), Some(failure));
        }
        assert_eq!(ConnectFailure::parse("<script>"), None);
    }
}
