use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::format::format_unix;
use super::states::ErrorScreen;
use crate::api::{organization_users, sign_in_issuer};
use crate::domain::SignInFailure;

/// `/login`: how to sign in (from the Workspace), why the last attempt ended, and an
/// organization-id field that starts `/auth/login` for people who arrive here directly.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let reason = move || {
        query
            .read()
            .get("reason")
            .and_then(|reason| SignInFailure::parse(&reason))
    };
    let signed_out = move || query.read().get("signed_out").is_some();
    let return_to = move || query.read().get("return_to").unwrap_or_default();
    let issuer = Resource::new(|| (), |_| sign_in_issuer());
    view! {
        <Title text="Sign in"/>
        <section class="card" aria-labelledby="login-title">
            <h1 id="login-title">"Sign in to Qentrah Connect"</h1>
            {move || signed_out().then(|| view! {
                <p class="notice notice--info" role="status">"You are signed out."</p>
            })}
            {move || reason().map(|reason| view! {
                <p class="notice notice--warn" role="status" data-reason=reason.as_str()>{reason.explain()}</p>
            })}
            <p>"Open Qentrah Connect from your Qentrah Workspace (Apps → Qentrah Connect → Open)."</p>
            <Suspense fallback=|| ()>
                {move || issuer.get().map(|issuer| match issuer {
                    Ok(Some(issuer)) => view! {
                        <form method="get" action="/auth/login" class="login-form">
                            <input type="hidden" name="iss" value=issuer/>
                            <input type="hidden" name="target_link_uri" value=return_to()/>
                            <label for="organization_id">"Or enter your organization id"</label>
                            <input id="organization_id" name="organization_id" required
                                pattern="[A-Za-z0-9_\\-]{1,64}" autocomplete="organization"/>
                            <button type="submit" class="button">"Continue"</button>
                        </form>
                    }.into_any(),
                    Ok(None) => view! {
                        <p class="muted">"This installation does not use sign-in."</p>
                    }.into_any(),
                    Err(error) => view! { <ErrorScreen error/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// `/admin/users`: the organization's users, their roles and last sign-in (admins only).
#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| organization_users());
    view! {
        <Title text="Users"/>
        <h1>"Users"</h1>
        <Suspense fallback=|| ()>
            {move || users.get().map(|result| match result {
                Ok(users) => view! {
                    <section class="card">
                        <table class="table">
                            <thead><tr><th>"Name"</th><th>"Email"</th><th>"Workspace role"</th><th>"Access"</th><th>"Last sign-in"</th></tr></thead>
                            <tbody>
                                {users.into_iter().map(|user| view! {
                                    <tr>
                                        <td>{user.name}</td>
                                        <td>{user.email}</td>
                                        <td><code>{user.workspace_role}</code></td>
                                        <td>{user.app_role.unwrap_or_else(|| "No access".to_owned())}</td>
                                        <td>{format_unix(user.last_sign_in_at)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }.into_any(),
                Err(error) => view! { <ErrorScreen error/> }.into_any(),
            })}
        </Suspense>
    }
}
