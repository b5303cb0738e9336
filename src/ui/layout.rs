use leptos::prelude::*;
use leptos_router::components::A;

use super::session::session_user;

/// The product header: name and primary navigation; when signed in (`AUTH_MODE=sso`), who
/// and in which organization, and "Sign out" (a plain form: it works without JavaScript).
#[component]
pub fn SiteHeader() -> impl IntoView {
    let user = session_user();
    let admin = user.as_ref().is_some_and(|u| u.is_admin());
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
                        {admin.then(|| view! { <li><A href="/admin/users">"Users"</A></li> })}
                    </ul>
                </nav>
                {user.map(|user| view! {
                    <div class="session">
                        <span class="session__who">
                            <strong>{user.name.clone()}</strong>
                            <span class="muted">{format!(" · {} · {}", if user.organization_name.is_empty() { user.organization_id.clone() } else { user.organization_name.clone() }, user.role)}</span>
                        </span>
                        <form method="post" action="/auth/logout" class="session__out">
                            <button type="submit" class="button button--quiet">"Sign out"</button>
                        </form>
                    </div>
                })}
            </div>
        </header>
    }
}
