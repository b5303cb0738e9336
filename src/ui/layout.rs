use leptos::prelude::*;
use leptos_router::components::A;

/// The product header: name and primary navigation.
#[component]
pub fn SiteHeader() -> impl IntoView {
    view! {
        <header class="site-header">
            <div class="site-header__inner">
                <a class="brand" href="/">
                    <span class="brand__mark" aria-hidden="true">"Q"</span>
                    <span class="brand__name">"Qentrah Connect"</span>
                </a>
                <nav aria-label="Primary">
                    // `A` marks the current page with aria-current="page".
                    <ul class="nav">
                        <li><A href="/" exact=true>"Home"</A></li>
                        <li><A href="/organization">"Organization"</A></li>
                        <li><A href="/clients">"Clients"</A></li>
                        <li><A href="/properties">"Properties"</A></li>
                        <li><A href="/connection">"Connection"</A></li>
                    </ul>
                </nav>
            </div>
        </header>
    }
}
