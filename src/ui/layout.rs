use leptos::prelude::*;

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
                    <ul class="nav">
                        <li><a href="/">"Home"</a></li>
                    </ul>
                </nav>
            </div>
        </header>
    }
}
