//! Minimal HTML for the consent, error and control pages.

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f3f1fa;color:#1d1b26}}
main{{max-width:44rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0001}}
header{{background:#3b2a7a;color:#fff;padding:.75rem 2rem;font-weight:600}}
h1{{font-size:1.5rem}} .muted{{color:#6b6880}} ul.plain{{list-style:none;padding:0}}
ul.plain li{{padding:.25rem 0}} fieldset{{border:1px solid #ddd;border-radius:8px}}
button{{font:inherit;padding:.5rem 1rem;border-radius:8px;border:1px solid #3b2a7a;background:#fff;color:#3b2a7a;cursor:pointer}}
button.primary{{background:#3b2a7a;color:#fff}} .actions{{display:flex;gap:.75rem;flex-wrap:wrap}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eee;vertical-align:top}}
form.inline{{display:inline}} code{{font-size:.9em}}
</style></head>
<body><header>Qentrah · dev Workspace</header><main>{body}</main></body></html>"#,
        title = escape(title),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::escape(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }
}
