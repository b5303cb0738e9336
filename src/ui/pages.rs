use leptos::prelude::*;
use leptos_meta::Title;

use super::use_hydrated;

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
