use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::format::format_unix;
use super::records::RecordTable;
use super::states::{start_url, ErrorScreen};
use super::use_hydrated;
use crate::api::{
    connection_status, dashboard, first_page, list_clients, list_properties, organization_overview,
    AppError, Disconnect,
};
use crate::domain::{ConnectFailure, ConnectionState, ListKind, RecordPage};
use crate::vocabulary::{describe_scope, flow_start_path, QENTRAH};

/// Where the "Authorize with Qentrah" control leads: a plain route, so it works before
/// hydration and without JavaScript. Links to it carry `rel="external"` so the client-side
/// router lets the browser navigate to the server.
pub fn start_route() -> String {
    flow_start_path(QENTRAH)
}

/// Shown while a page's data loads.
#[component]
fn Loading(what: &'static str) -> impl IntoView {
    view! {
        <div class="loading" role="status" aria-live="polite">
            <span class="loading__bar" aria-hidden="true"></span>
            <span>{format!("Loading {what}…")}</span>
        </div>
    }
}

/// Home: what the product does, and the connection (authorize, or the organization's name).
#[component]
pub fn HomePage() -> impl IntoView {
    let organization = Resource::new(|| (), |_| organization_overview());

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

        <section class="card" aria-labelledby="connection-title">
            <h2 id="connection-title">"Your Qentrah connection"</h2>
            <Suspense fallback=|| view! { <Loading what="your connection"/> }>
                {move || organization.get().map(|result| match result {
                    Ok(org) => view! {
                        <div class="notice notice--ok" role="status">
                            <p>"Connected to " <strong>{org.name}</strong></p>
                        </div>
                        <p class="actions">
                            <a class="button" href="/organization">"View organization"</a>
                            <a class="button button--quiet" href="/clients">"Clients"</a>
                            <a class="button button--quiet" href="/properties">"Properties"</a>
                            <a class="button button--quiet" href="/connection">"Connection"</a>
                        </p>
                        <div class="previews">
                            <ListPreview list=ListKind::Clients/>
                            <ListPreview list=ListKind::Properties/>
                        </div>
                    }.into_any(),
                    Err(AppError::NotConnected) => view! {
                        <p>"Connect your organization to see its clients and properties here."</p>
                        <a class="button" href=start_route() rel="external">"Authorize with Qentrah"</a>
                    }.into_any(),
                    Err(error) => view! { <ErrorScreen error/> }.into_any(),
                })}
            </Suspense>
        </section>

        <HowItWorks/>
    }
}

/// How many records an overview shows of each list.
const PREVIEW_ROWS: usize = 5;

/// The first records of a list with its count and a link to the whole list: its own request,
/// so an error in it (a withdrawn scope, an outage) shows here, with its fix, while the rest
/// of the overview stands.
#[component]
fn ListPreview(list: ListKind) -> impl IntoView {
    let data = Resource::new(move || list, first_page);
    let (title, path) = match list {
        ListKind::Clients => ("Clients", "/clients"),
        ListKind::Properties => ("Properties", "/properties"),
    };
    let id = format!("{}-preview-title", path.trim_start_matches('/'));
    let labelled_by = id.clone();
    view! {
        <section class="card" aria-labelledby=labelled_by>
            <h2 id=id>{title}</h2>
            <Suspense fallback=move || view! { <Loading what=title/> }>
                {move || data.get().map(|result| match result {
                    Ok(page) => preview_of(page, title, path).into_any(),
                    Err(error) => view! { <ErrorScreen error/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

fn preview_of(page: RecordPage, title: &'static str, path: &'static str) -> impl IntoView {
    let count = page.count_label();
    let noun = title.to_lowercase();
    view! {
        <p class="muted">{format!("{count} {noun}")}</p>
        <ul class="preview">
            {page.records.into_iter().take(PREVIEW_ROWS).map(|record| view! {
                <li class="break">{record.name}</li>
            }).collect_view()}
        </ul>
        <a href=path>{format!("All {count} {noun}")}</a>
    }
}

/// The steps of connecting, with a toggle once JavaScript runs (an island).
#[island]
fn HowItWorks() -> impl IntoView {
    // Open on the server, so the steps are readable without JavaScript; the toggle appears
    // only once hydrated, because before that it could not respond.
    let (steps_open, set_steps_open) = signal(true);
    let hydrated = use_hydrated();
    view! {
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

/// `/organization`: the profile with its clients and properties, all loaded at once.
#[component]
pub fn OrganizationPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| dashboard());
    view! {
        <Title text="Organization"/>
        <Transition fallback=|| view! { <Loading what="your organization"/> }>
            {move || data.get().map(|result| match result {
                Ok(d) => {
                    let org = d.organization;
                    // Only the first page is read: "active" is counted when that is all of them.
                    let active_clients = d.clients.is_complete().then(|| {
                        d.clients.records.iter().filter(|c| c.status.as_deref() == Some("active")).count()
                    });
                    let facts = [
                        ("Plan", org.plan.clone()),
                        ("Country", org.country.clone()),
                        ("Time zone", org.timezone.clone()),
                        ("Billing e-mail", org.billing_email.clone()),
                        ("Qentrah id", Some(org.id.clone())),
                    ];
                    view! {
                        <section class="hero" aria-labelledby="org-title">
                            <h1 id="org-title" class="break">{org.name.clone()}</h1>
                        </section>
                        <div class="stats">
                            <a class="stat card" href="/clients">
                                <span class="stat__value">{d.clients.count_label()}</span>
                                <span class="stat__label">"Clients"</span>
                                {active_clients.map(|n| view! { <span class="muted">{format!("{n} active")}</span> })}
                            </a>
                            <a class="stat card" href="/properties">
                                <span class="stat__value">{d.properties.count_label()}</span>
                                <span class="stat__label">"Properties"</span>
                            </a>
                        </div>
                        <section class="card" aria-labelledby="profile-title">
                            <h2 id="profile-title">"Profile"</h2>
                            <dl class="facts">
                                {facts.into_iter().filter_map(|(label, value)| value.map(|v| view! {
                                    <dt>{label}</dt><dd class="break">{v}</dd>
                                })).collect_view()}
                            </dl>
                        </section>
                    }.into_any()
                }
                Err(error) => view! {
                    <h1>"Organization"</h1>
                    <ErrorScreen error/>
                }.into_any(),
            })}
        </Transition>
    }
}

/// The list's filter and order from the address (`?q=…&sort=…`), for [`RecordTable`].
fn list_query() -> (String, String) {
    let query = use_query_map();
    query.with_untracked(|q| {
        (
            q.get("q").unwrap_or_default(),
            q.get("sort").unwrap_or_default(),
        )
    })
}

/// The page of a list the address asks for (`?cursor=…`; the first without one).
fn list_cursor() -> Memo<Option<String>> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get("cursor").filter(|c| !c.is_empty())))
}

/// A list page: one page of records (a list of thousands is never loaded at once), the table,
/// and links to the next page and back to the first. Plain links, so paging works without
/// JavaScript too.
fn list_page_view(
    page: RecordPage,
    noun: &'static str,
    detail_heading: &'static str,
    path: &'static str,
    on_later_page: bool,
    (filter, sort): (String, String),
) -> impl IntoView {
    let partial = !page.is_complete() || on_later_page;
    let shown = page.records.len();
    let summary = partial.then(|| match (page.total, page.is_complete()) {
        (Some(total), _) => format!("This page shows {shown} of {total} {noun}s."),
        (None, false) => format!("This page shows {shown} {noun}s; the next page has more."),
        (None, true) => format!("The last page: {shown} {noun}s."),
    });
    let next = page.next_cursor.clone().map(|cursor| {
        let query: String = url_encode(&cursor);
        format!("{path}?cursor={query}")
    });
    view! {
        {summary.map(|text| view! { <p class="muted">{text}</p> })}
        <RecordTable records=page.records noun=noun.into() detail_heading=detail_heading.into()
            filter=filter sort=sort/>
        {partial.then(|| view! {
            <nav class="pager" aria-label=format!("Pages of {noun}s")>
                {on_later_page.then(|| view! { <a href=path>"First page"</a> })}
                {next.map(|href| view! { <a class="button button--quiet" href=href rel="next">"Next page"</a> })}
            </nav>
        })}
    }
}

/// `application/x-www-form-urlencoded` for a query value.
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/clients`.
#[component]
pub fn ClientsPage() -> impl IntoView {
    let cursor = list_cursor();
    let data = Resource::new(move || cursor.get(), list_clients);
    let query = list_query();
    view! {
        <Title text="Clients"/>
        <h1>"Clients"</h1>
        <Transition fallback=|| view! { <Loading what="clients"/> }>
            {move || data.get().map(|result| match result {
                Ok(page) => list_page_view(page, "client", "E-mail", "/clients",
                    cursor.get_untracked().is_some(), query.clone()).into_any(),
                Err(error) => view! { <ErrorScreen error/> }.into_any(),
            })}
        </Transition>
    }
}

/// `/properties`.
#[component]
pub fn PropertiesPage() -> impl IntoView {
    let cursor = list_cursor();
    let data = Resource::new(move || cursor.get(), list_properties);
    let query = list_query();
    view! {
        <Title text="Properties"/>
        <h1>"Properties"</h1>
        <Transition fallback=|| view! { <Loading what="properties"/> }>
            {move || data.get().map(|result| match result {
                Ok(page) => list_page_view(page, "property", "Kind", "/properties",
                    cursor.get_untracked().is_some(), query.clone()).into_any(),
                Err(error) => view! { <ErrorScreen error/> }.into_any(),
            })}
        </Transition>
    }
}

/// `/connection`: status, granted access, dates, and Disconnect (with a confirmation step that
/// works without JavaScript: `?confirm=disconnect`).
#[component]
pub fn ConnectionPage() -> impl IntoView {
    let disconnect = ServerAction::<Disconnect>::new();
    let status = Resource::new(move || disconnect.version().get(), |_| connection_status());
    let query = use_query_map();
    let confirming = move || query.with(|q| q.get("confirm").as_deref() == Some("disconnect"));
    // AUTH_MODE=sso: members see the organization's connection; only admins change it (the
    // server refuses anyone else whatever the page shows).
    let manage = super::session::can_manage_connection();

    view! {
        <Title text="Connection"/>
        <h1>"Connection"</h1>
        <Transition fallback=|| view! { <Loading what="your connection"/> }>
            {move || status.get().map(|result| match result {
                Ok(connection) => {
                    let connected = connection.state == ConnectionState::Connected;
                    let uninstalled = connection.state == ConnectionState::Uninstalled;
                    let (title, badge) = match connection.state {
                        ConnectionState::Connected => ("Connected", "Active"),
                        ConnectionState::Uninstalled => ("Qentrah Connect was uninstalled from this Workspace", "Uninstalled"),
                        ConnectionState::ReconnectRequired => ("Reconnection needed", "Expired"),
                    };
                    view! {
                        <section class="card" aria-labelledby="conn-title">
                            <h2 id="conn-title">{title}</h2>
                            <dl class="facts">
                                <dt>"Organization"</dt><dd><code>{connection.organization_id.clone()}</code></dd>
                                <dt>"Status"</dt>
                                <dd>
                                    <span class=if connected { "badge badge--ok" } else { "badge badge--warn" }>
                                        {badge}
                                    </span>
                                </dd>
                                <dt>"Connected since"</dt><dd>{format_unix(connection.connected_at)}</dd>
                                <dt>"Last refresh"</dt>
                                <dd>{connection.refreshed_at.map(format_unix).unwrap_or_else(|| "Not yet".to_owned())}</dd>
                            </dl>
                            <h3>"This app may"</h3>
                            <ul>
                                {connection.scopes.iter().map(|scope| view! {
                                    <li>{describe_scope(scope)} " " <code>{scope.clone()}</code></li>
                                }).collect_view()}
                            </ul>
                            {(!connection.missing_scopes.is_empty()).then(|| view! {
                                <h3>"Not granted"</h3>
                                <p class="muted">"This app asked for these, and the connection does not include them; the pages that need them will say so. Authorize again to grant them."</p>
                                <ul>
                                    {connection.missing_scopes.iter().map(|scope| view! {
                                        <li>{describe_scope(scope)} " " <code>{scope.clone()}</code></li>
                                    }).collect_view()}
                                </ul>
                                {manage.then(|| view! {
                                    <a class="button button--quiet" href=start_url("/connection") rel="external">"Authorize again"</a>
                                })}
                            })}
                            {uninstalled.then(|| view! {
                                <p class="muted">"A Workspace admin removed this app, so its access ended. Reconnecting will not help: an admin installs Qentrah Connect again from the Workspace's marketplace."</p>
                            })}
                            {(!connected && !uninstalled && manage).then(|| view! {
                                <a class="button" href=start_url("/connection") rel="external">"Reconnect to Qentrah"</a>
                            })}
                            {(!connected && !uninstalled && !manage).then(|| view! {
                                <p class="muted">"Ask a Workspace admin to reconnect Qentrah Connect."</p>
                            })}
                        </section>
                        <section class="card" aria-labelledby="disconnect-title" hidden=!manage>
                            <h2 id="disconnect-title">"Disconnect"</h2>
                            <p>"Disconnecting revokes this app's access in Qentrah and deletes its stored credentials. You can connect again at any time."</p>
                            {move || if confirming() {
                                view! {
                                    <div class="notice notice--warn" role="alertdialog" aria-labelledby="confirm-title">
                                        <p id="confirm-title"><strong>"Disconnect from Qentrah?"</strong></p>
                                        <ActionForm action=disconnect>
                                            <p class="actions">
                                                <button type="submit" class="button button--danger">"Yes, disconnect"</button>
                                                <a class="button button--quiet" href="/connection">"Cancel"</a>
                                            </p>
                                        </ActionForm>
                                    </div>
                                }.into_any()
                            } else {
                                view! {
                                    <a class="button button--quiet" href="/connection?confirm=disconnect">"Disconnect…"</a>
                                }.into_any()
                            }}
                        </section>
                    }.into_any()
                }
                Err(AppError::NotConnected) => view! {
                    <section class="card">
                        <p role="status">"Not connected to Qentrah."</p>
                        <a class="button" href=start_url("/connection") rel="external">"Authorize with Qentrah"</a>
                    </section>
                }.into_any(),
                Err(error) => view! { <ErrorScreen error/> }.into_any(),
            })}
        </Transition>
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
                <a class="button" href=start_route() rel="external">"Try again"</a>
                <a class="button button--quiet" href="/">"Back to the home page"</a>
            </p>
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
