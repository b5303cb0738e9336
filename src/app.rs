use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use crate::ui::layout::SiteHeader;
use crate::ui::pages::{
    ClientsPage, ConnectFailedPage, ConnectionPage, HomePage, NotFoundPage, OrganizationPage,
    PropertiesPage,
};
use crate::ui::sign_in::{AdminUsersPage, LoginPage};
use crate::ui::HydrationMarker;

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The page's CSP names this response's nonce, which Leptos puts on its inline scripts.
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(value) =
            axum::http::HeaderValue::from_str(&crate::server::web::security::page_csp(&nonce))
        {
            response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: header, routes, and the marker Playwright waits for after hydration.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/qentrah-connect.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title formatter=|title: String| {
            if title.is_empty() { "Qentrah Connect".to_string() } else { format!("{title} · Qentrah Connect") }
        }/>
        <HydrationMarker/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <SiteHeader/>
            <main id="main" class="page">
                <Routes fallback=NotFoundPage>
                    // Async: the whole page, data included, is in the first HTML, so it reads
                    // the same without JavaScript (streamed Suspense would need a script).
                    <Route path=path!("") view=HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/organization") view=OrganizationPage ssr=SsrMode::Async/>
                    <Route path=path!("/clients") view=ClientsPage ssr=SsrMode::Async/>
                    <Route path=path!("/properties") view=PropertiesPage ssr=SsrMode::Async/>
                    <Route path=path!("/connection") view=ConnectionPage ssr=SsrMode::Async/>
                    <Route path=path!("/connect/failed") view=ConnectFailedPage/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view=AdminUsersPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
