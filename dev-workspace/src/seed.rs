//! Seeded organizations, clients and properties: realistic fields, one organization large enough
//! to need several pages, and names chosen to break careless escaping and layout (HTML, quotes,
//! emoji, right-to-left text, great length).

use serde::Serialize;
use serde_json::{json, Value};

/// A seeded organization with its records (JSON as the partner API returns them).
#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub me: Value,
    pub clients: Vec<Value>,
    pub properties: Vec<Value>,
}

/// The organizations every dev Workspace starts with, in a fixed order.
pub fn organizations() -> Vec<Organization> {
    vec![acme(), harbor_and_pine(), tricky(), numbered()]
}

const CITIES: [(&str, &str, &str); 8] = [
    ("Lisbon", "1100-148", "PT"),
    ("Porto", "4000-322", "PT"),
    ("Madrid", "28013", "ES"),
    ("Berlin", "10115", "DE"),
    ("Amsterdam", "1012 JS", "NL"),
    ("Dublin", "D02 X285", "IE"),
    ("Lyon", "69002", "FR"),
    ("Milan", "20121", "IT"),
];
const STREETS: [&str; 6] = [
    "Rua Augusta",
    "Calle Mayor",
    "Hauptstraße",
    "Keizersgracht",
    "Grafton Street",
    "Via Torino",
];
const FIRST: [&str; 10] = [
    "Ana", "Bruno", "Carla", "Diego", "Eva", "Filipe", "Greta", "Hugo", "Inês", "João",
];
const LAST: [&str; 10] = [
    "Silva", "Moreau", "Schmidt", "García", "Rossi", "Byrne", "Jansen", "Costa", "Novak", "Dubois",
];
const PROPERTY_KINDS: [&str; 4] = ["apartment", "house", "commercial", "parking"];

/// A timestamp a fixed number of days after 2024-01-01, as RFC 3339.
fn timestamp(day: usize) -> String {
    let month_days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut day = day % 700;
    let mut year = 2024;
    let mut month = 0;
    loop {
        let len = if year == 2024 || month != 1 {
            month_days[month]
        } else {
            28
        };
        if day < len {
            break;
        }
        day -= len;
        month += 1;
        if month == 12 {
            month = 0;
            year += 1;
        }
    }
    format!(
        "{year}-{:02}-{:02}T09:{:02}:00Z",
        month + 1,
        day + 1,
        (day * 7) % 60
    )
}

fn client(org_code: &str, index: usize, name: String) -> Value {
    let (city, postal, country) = CITIES[index % CITIES.len()];
    let email_local: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect();
    json!({
        "id": format!("cli_{org_code}_{index:04}"),
        "name": name,
        "email": format!("{}@example.com", if email_local.is_empty() { format!("client{index}") } else { email_local }),
        "phone": format!("+351 21 {:03} {:04}", 100 + index % 900, (index * 37) % 10_000),
        "status": if index % 7 == 3 { "inactive" } else { "active" },
        "address": {
            "line1": format!("{} {}", STREETS[index % STREETS.len()], 1 + index % 180),
            "city": city,
            "postal_code": postal,
            "country": country,
        },
        "created_at": timestamp(index * 3),
        "updated_at": timestamp(index * 3 + 40),
    })
}

fn property(org_code: &str, index: usize, name: String, client_count: usize) -> Value {
    let (city, postal, country) = CITIES[(index + 3) % CITIES.len()];
    json!({
        "id": format!("prp_{org_code}_{index:04}"),
        "name": name,
        "kind": PROPERTY_KINDS[index % PROPERTY_KINDS.len()],
        "units": 1 + (index * 5) % 24,
        "status": if index % 9 == 4 { "archived" } else { "active" },
        "client_id": format!("cli_{org_code}_{:04}", index % client_count.max(1)),
        "address": {
            "line1": format!("{} {}", STREETS[(index + 2) % STREETS.len()], 10 + index % 90),
            "city": city,
            "postal_code": postal,
            "country": country,
        },
        "created_at": timestamp(index * 5 + 2),
        "updated_at": timestamp(index * 5 + 60),
    })
}

fn person(index: usize) -> String {
    format!(
        "{} {}",
        FIRST[index % FIRST.len()],
        LAST[(index / FIRST.len() + index) % LAST.len()]
    )
}

fn me(id: &str, name: &str, slug: &str, plan: &str, created_day: usize) -> Value {
    json!({
        "id": id,
        "name": name,
        "slug": slug,
        "plan": plan,
        "country": "PT",
        "timezone": "Europe/Lisbon",
        "billing_email": format!("billing@{slug}.example.com"),
        "created_at": timestamp(created_day),
    })
}

fn acme() -> Organization {
    let id = "org_acme";
    let name = "Acme Property Group";
    let clients: Vec<Value> = (0..12).map(|i| client("acme", i, person(i))).collect();
    let properties = (0..8)
        .map(|i| {
            property(
                "acme",
                i,
                format!("{} Residences, unit {}", STREETS[i % STREETS.len()], i + 1),
                12,
            )
        })
        .collect();
    Organization {
        id: id.to_owned(),
        name: name.to_owned(),
        me: me(id, name, "acme", "professional", 10),
        clients,
        properties,
    }
}

fn harbor_and_pine() -> Organization {
    let id = "org_harbor";
    let name = "Harbor & Pine Estates";
    let clients: Vec<Value> = (0..240)
        .map(|i| client("harbor", i, person(i * 3 + 1)))
        .collect();
    let properties = (0..180)
        .map(|i| property("harbor", i, format!("Harbor Lot {:03}", i + 1), 240))
        .collect();
    Organization {
        id: id.to_owned(),
        name: name.to_owned(),
        me: me(id, name, "harbor-pine", "enterprise", 3),
        clients,
        properties,
    }
}

fn tricky() -> Organization {
    let id = "org_tricky";
    let name = "<b>Tricky</b> \"Quotes\" & 'Co' 🏠 عقارات الشرق";
    let names = [
        "<script>alert('xss')</script>".to_owned(),
        "O'Brien & \"Sons\" <Ltd>".to_owned(),
        "🏡🔑 Emoji Homes 🌊".to_owned(),
        "شركة العقارات المتحدة".to_owned(),
        "מגורים בע\"מ".to_owned(),
        format!("{} Holdings", "Very-Long-Name-".repeat(12)),
        "Zero\u{200B}Width Space".to_owned(),
        "   Padded   Name   ".to_owned(),
    ];
    let clients: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| client("tricky", i, n.clone()))
        .collect();
    let properties = [
        "<img src=x onerror=alert(1)> Loft",
        "Casa \"Azul\" & Jardim",
        "برج المدينة",
        "🏢 Tower 42",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| property("tricky", i, (*n).to_owned(), names.len()))
    .collect();
    Organization {
        id: id.to_owned(),
        name: name.to_owned(),
        me: me(id, name, "tricky", "starter", 100),
        clients,
        properties,
    }
}

/// Grows or shrinks an organization's clients to `count`, generating the new ones like the seed.
pub fn set_client_count(org: &mut Organization, count: usize) {
    let code = org.id.trim_start_matches("org_").to_owned();
    let existing = org.clients.len();
    org.clients.truncate(count);
    for i in existing..count {
        org.clients.push(client(&code, i, person(i)));
    }
}

/// An organization whose id is all digits, as Workspaces backed by integer keys have them (with
/// the `numeric_organization_id` quirk, token responses send it as a JSON number).
fn numbered() -> Organization {
    let id = "1001";
    let name = "Numbered Lettings 1001";
    let clients: Vec<Value> = (0..3)
        .map(|i| client("numbered", i, person(i + 5)))
        .collect();
    let properties = (0..2)
        .map(|i| property("numbered", i, format!("Number {} Quay", i + 1), 3))
        .collect();
    Organization {
        id: id.to_owned(),
        name: name.to_owned(),
        me: me(id, name, "numbered", "starter", 40),
        clients,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_deterministic_with_unique_ids() {
        let a = serde_json::to_string(&organizations()).unwrap();
        let b = serde_json::to_string(&organizations()).unwrap();
        assert_eq!(a, b);
        for org in organizations() {
            let mut ids: Vec<_> = org.clients.iter().map(|c| c["id"].to_string()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), org.clients.len(), "{}", org.id);
        }
    }

    #[test]
    fn timestamps_are_valid_dates() {
        for day in [0, 30, 59, 365, 366, 699] {
            let t = timestamp(day);
            assert_eq!(t.len(), 20, "{t}");
        }
        assert_eq!(timestamp(0), "2024-01-01T09:00:00Z");
        assert!(timestamp(59).starts_with("2024-02-29"));
        assert!(timestamp(60).starts_with("2024-03-01"));
        assert!(timestamp(366).starts_with("2025-01-01"));
    }
}
