use leptos::prelude::*;
use leptos_meta::Title;

use leptos_router::hooks::use_query_map;

use super::use_hydrated;
use crate::api::{connection_status, AppError, Disconnect};
use crate::domain::{ConnectFailure, ConnectionState};

/// Where the "Authorize with Qentrah" control leads: a plain route, so it works before
/// hydration and without JavaScript. Links to it carry `rel="external"` so the client-side
/// router lets the browser navigate to the server.
pub const START_URL: &str = "/api/auth/qentrah/start";

/// The connection panel on the home page: authorize, connected, or reconnect.
#[component]
fn ConnectionPanel() -> impl IntoView {
    let status = Resource::new(|| (), |_| connection_status());
    let disconnect = ServerAction::<Disconnect>::new();
    Effect::new(move |_| {
        if disconnect.value().get().is_some() {
            status.refetch();
        }
    });
    view! {
        <section class="card" aria-labelledby="connection-title">
            <h2 id="connection-title">"Your Qentrah connection"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Checking your connection…"</p> }>
                {move || status.get().map(|result| match result {
                    Ok(connection) if connection.state == ConnectionState::Connected => view! {
                        <div class="notice notice--ok" role="status">
                            <p>"Connected to organization " <code>{connection.organization_id}</code></p>
                            <p>"Granted: " {connection.scopes.join(", ")}</p>
                        </div>
                        <ActionForm action=disconnect>
                            <button type="submit" class="button button--quiet">"Disconnect"</button>
                        </ActionForm>
                    }.into_any(),
                    Ok(_) | Err(AppError::ReconnectRequired) => view! {
                        <div class="notice notice--warn" role="status">
                            <p>"Your connection to Qentrah has expired."</p>
                        </div>
                        <a class="button" href=START_URL rel="external">"Reconnect to Qentrah"</a>
                    }.into_any(),
                    Err(AppError::NotConnected) => view! {
                        <p>"Connect your organization to see its clients and properties here."</p>
                        <a class="button" href=START_URL rel="external">"Authorize with Qentrah"</a>
                    }.into_any(),
                    Err(_) => view! {
                        <div class="notice notice--error" role="alert">
                            <p>"We could not check your connection. Try again in a moment."</p>
                        </div>
                        <a class="button button--quiet" href="/">"Retry"</a>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// `/connect/failed?reason=…`: why a connection attempt ended, and the way to try again.
#[component]
pub fn ConnectFailedPage() -> impl IntoView {
    let query = use_query_map();
    let failure = move || {
        query
            .read()
            .get("reason")
            .and_then(|reason| ConnectFailure::parse(&reason))
            .unwrap_or(ConnectFailure::InvalidResponse)
    };
    view! {
        <Title text="Connection not completed"/>
        <section class="card" aria-labelledby="failed-title">
            <h1 id="failed-title">{move || failure().explain().0}</h1>
            <p>{move || failure().explain().1}</p>
            <p class="actions">
                <a class="button" href=START_URL rel="external">"Try again"</a>
                " "
                <a class="button button--quiet" href="/">"Back to the home page"</a>
            </p>
        </section>
    }
}

/// Home: what the product does and how connecting works.
#[component]
pub fn HomePage() -> impl IntoView {
    // Open on the server, so the steps are readable without JavaScript; the toggle appears
    // only once hydrated, because before that it could not respond.
    let (steps_open, set_steps_open) = signal(true);
    let hydrated = use_hydrated();

    view! {
        <Title text=""/>
        <section class="hero" aria-labelledby="home-title">
            <h1 id="home-title">"Connect your Qentrah Workspace"</h1>
            <p class="lede">
                "Qentrah Connect reads your organization, clients and properties from your "
                "Qentrah Workspace, so you don't have to copy them by hand. You approve the "
                "access in Qentrah; the credentials stay on our server and never reach your browser."
            </p>
        </section>

        <ConnectionPanel/>

        <section class="card" aria-labelledby="how-title">
            <div class="card__header">
                <h2 id="how-title">"How connecting works"</h2>
                <button
                    type="button"
                    class="button button--quiet"
                    hidden=move || !hydrated.get()
                    aria-expanded=move || steps_open.get().to_string()
                    aria-controls="how-steps"
                    on:click=move |_| set_steps_open.update(|open| *open = !*open)
                >
                    {move || if steps_open.get() { "Hide the steps" } else { "Show the steps" }}
                </button>
            </div>
            <ol id="how-steps" class="steps" hidden=move || !steps_open.get()>
                <li>"You start the connection here and sign in to Qentrah."</li>
                <li>"Qentrah asks you to approve read access for your organization."</li>
                <li>"You come back here, connected. Disconnect at any time."</li>
            </ol>
        </section>
    }
}

/// Any path no route matches.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found"/>
        <section class="card" aria-labelledby="nf-title">
            <h1 id="nf-title">"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <p><a class="button" href="/">"Go to the home page"</a></p>
        </section>
    }
}
