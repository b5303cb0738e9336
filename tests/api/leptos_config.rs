//! cargo-leptos reads `[package.metadata.leptos]` in Cargo.toml; the server reads Leptos.toml.
//! The keys both need must agree, or the server would look for a bundle where none was built.

fn leptos_table(file: &str) -> toml::Table {
    let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), file);
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc["package"]["metadata"]["leptos"]
        .as_table()
        .unwrap_or_else(|| panic!("{file} has no [package.metadata.leptos]"))
        .clone()
}

#[test]
fn cargo_toml_and_leptos_toml_agree_on_shared_keys() {
    let build = leptos_table("Cargo.toml");
    let runtime = leptos_table("Leptos.toml");
    for key in runtime.keys() {
        assert_eq!(
            build.get(key),
            runtime.get(key),
            "`{key}` differs between Cargo.toml and Leptos.toml"
        );
    }
    for key in [
        "output-name",
        "site-root",
        "site-pkg-dir",
        "site-addr",
        "reload-port",
    ] {
        assert!(runtime.contains_key(key), "Leptos.toml lacks `{key}`");
    }
}
