//! A screen for every state the connection or the Workspace can be in, each with the action
//! that fixes it. The mapping is a plain function so a unit test can pin it down.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::AppError;
use crate::vocabulary::describe_scope;

/// What the person can do about a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Start (or restart) the OAuth flow, coming back to the same page.
    Authorize { label: &'static str },
    /// Load the page again.
    Retry,
    /// Sign in (`AUTH_MODE=sso`), coming back to the same page.
    SignIn,
}

/// How a state looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub title: &'static str,
    pub body: String,
    pub fix: Fix,
    /// `error`, `warn` or `info` (the notice's colour).
    pub tone: &'static str,
}

/// The unit-tested table from error to screen.
pub fn screen_for(error: &AppError) -> Screen {
    match error {
        AppError::NotConnected => Screen {
            title: "Connect your Qentrah Workspace",
            body: "This page shows data from your Qentrah Workspace. Connect it first; you approve the access in Qentrah.".into(),
            fix: Fix::Authorize { label: "Authorize with Qentrah" },
            tone: "info",
        },
        AppError::ReconnectRequired => Screen {
            title: "Your connection to Qentrah has expired",
            body: "Qentrah no longer accepts this app's access. Reconnect to continue; you will come back to this page.".into(),
            fix: Fix::Authorize { label: "Reconnect to Qentrah" },
            tone: "warn",
        },
        AppError::Uninstalled => Screen {
            title: "Qentrah Connect was uninstalled from this Workspace",
            body: "A Workspace admin removed this app, so its access ended and its stored credentials were deleted. To use it again, an admin installs Qentrah Connect from the Workspace's marketplace.".into(),
            fix: Fix::Retry,
            tone: "warn",
        },
        AppError::AskWorkspaceAdmin => Screen {
            title: "A Qentrah admin must approve this app",
            body: "Your connection is fine, but this app is not approved in your Qentrah Workspace. Ask a Workspace admin to approve it, then check again. Reconnecting will not help.".into(),
            fix: Fix::Retry,
            tone: "warn",
        },
        AppError::ScopeDenied { scope } => Screen {
            title: "This app is missing access",
            body: match scope {
                Some(scope) => format!(
                    "The connection does not allow this app to {} ({scope}). Authorize again and approve that access.",
                    describe_scope(scope)
                ),
                None => "The connection does not include the access this page needs. Authorize again and approve it.".into(),
            },
            fix: Fix::Authorize { label: "Authorize again" },
            tone: "warn",
        },
        AppError::WrongOrganization => Screen {
            title: "This connection is for another organization",
            body: "The Qentrah access this app holds belongs to a different organization. Connect the organization you want to see.".into(),
            fix: Fix::Authorize { label: "Connect the right organization" },
            tone: "warn",
        },
        AppError::Retry => Screen {
            title: "Qentrah is unavailable",
            body: "Qentrah did not answer in time or sent something we could not read. Your connection is kept; try again in a moment.".into(),
            fix: Fix::Retry,
            tone: "error",
        },
        AppError::LoginRequired => Screen {
            title: "Sign in to continue",
            body: "Open Qentrah Connect from your Qentrah Workspace (Apps → Qentrah Connect → Open) to sign in.".into(),
            fix: Fix::SignIn,
            tone: "info",
        },
        AppError::AdminOnly => Screen {
            title: "Only Workspace admins can do this",
            body: "Your role in this organization does not allow it. Ask a Workspace admin.".into(),
            fix: Fix::Retry,
            tone: "warn",
        },
        AppError::AdminMustConnect => Screen {
            title: "Ask a Workspace admin to connect Qentrah Connect",
            body: "Your organization has not connected Qentrah Connect to its Workspace data yet. Once a Workspace admin authorizes it, this page shows the data.".into(),
            fix: Fix::Retry,
            tone: "info",
        },
        AppError::Internal | AppError::Request => Screen {
            title: "Something went wrong",
            body: "The page could not be loaded. Nothing was lost; try again.".into(),
            fix: Fix::Retry,
            tone: "error",
        },
    }
}

/// `path` percent-encoded for a query value (`/` kept).
fn urlencode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The start route with a way back to `path`.
pub fn start_url(path: &str) -> String {
    format!(
        "{}?return_to={}",
        crate::ui::pages::start_route(),
        urlencode(path)
    )
}

/// Renders the screen for `error`, with its fixing action pointing back at this page.
#[component]
pub fn ErrorScreen(error: AppError) -> impl IntoView {
    let location = use_location();
    let here = location.pathname.get_untracked();
    let screen = screen_for(&error);
    let action = match screen.fix {
        Fix::Authorize { label } => view! {
            <a class="button" href=start_url(&here) rel="external">{label}</a>
        }
        .into_any(),
        Fix::SignIn => view! {
            <a class="button" href=format!("/login?return_to={}", urlencode(&here)) rel="external">"Sign in"</a>
        }
        .into_any(),
        // A full reload, with or without JavaScript.
        Fix::Retry => view! {
            <a class="button" href=here.clone() rel="external">"Retry"</a>
        }
        .into_any(),
    };
    let role = if screen.tone == "error" {
        "alert"
    } else {
        "status"
    };
    view! {
        <section class=format!("notice notice--{} state-screen", screen.tone) role=role aria-labelledby="state-title">
            <h2 id="state-title">{screen.title}</h2>
            <p>{screen.body}</p>
            <p class="actions">{action}</p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_screen_with_the_right_fix() {
        let cases = [
            (
                AppError::NotConnected,
                Fix::Authorize {
                    label: "Authorize with Qentrah",
                },
            ),
            (
                AppError::ReconnectRequired,
                Fix::Authorize {
                    label: "Reconnect to Qentrah",
                },
            ),
            (AppError::AskWorkspaceAdmin, Fix::Retry),
            (AppError::Uninstalled, Fix::Retry),
            (
                AppError::ScopeDenied {
                    scope: Some("client:read".into()),
                },
                Fix::Authorize {
                    label: "Authorize again",
                },
            ),
            (
                AppError::WrongOrganization,
                Fix::Authorize {
                    label: "Connect the right organization",
                },
            ),
            (AppError::Retry, Fix::Retry),
            (AppError::Internal, Fix::Retry),
            (AppError::Request, Fix::Retry),
            (AppError::LoginRequired, Fix::SignIn),
            (AppError::AdminOnly, Fix::Retry),
            (AppError::AdminMustConnect, Fix::Retry),
        ];
        for (error, fix) in cases {
            assert_eq!(screen_for(&error).fix, fix, "{error:?}");
        }
        assert_eq!(screen_for(&AppError::Retry).title, "Qentrah is unavailable");
        let scope = screen_for(&AppError::ScopeDenied {
            scope: Some("client:read".into()),
        });
        assert!(scope.body.contains("read your clients"));
        // An admin problem never loops the person through a reconnect.
        for admins_to_fix in [
            AppError::AskWorkspaceAdmin,
            AppError::Uninstalled,
            AppError::AdminMustConnect,
            AppError::AdminOnly,
        ] {
            assert!(!matches!(
                screen_for(&admins_to_fix).fix,
                Fix::Authorize { .. }
            ));
        }
    }

    #[test]
    fn start_url_carries_the_way_back() {
        assert_eq!(
            start_url("/clients"),
            "/api/auth/qentrah/start?return_to=/clients"
        );
        assert_eq!(
            start_url("/a b?x"),
            "/api/auth/qentrah/start?return_to=/a%20b%3Fx"
        );
    }
}
