//! The list of clients or properties: filter and sort in the browser once hydrated, and the same
//! through a plain GET form (`?q=…&sort=…`) without JavaScript.

use leptos::prelude::*;

use crate::domain::RecordView;

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    NameAscending,
    NameDescending,
    Status,
}

impl SortOrder {
    pub fn parse(value: &str) -> Self {
        match value {
            "name-desc" => SortOrder::NameDescending,
            "status" => SortOrder::Status,
            _ => SortOrder::NameAscending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::NameAscending => "name",
            SortOrder::NameDescending => "name-desc",
            SortOrder::Status => "status",
        }
    }
}

/// Records matching `filter` (case-insensitive, on name, detail, status and location), sorted.
pub fn filter_and_sort(records: &[RecordView], filter: &str, order: SortOrder) -> Vec<RecordView> {
    let needle = filter.trim().to_lowercase();
    let mut out: Vec<RecordView> = records
        .iter()
        .filter(|r| {
            needle.is_empty()
                || [
                    Some(&r.name),
                    r.detail.as_ref(),
                    r.status.as_ref(),
                    r.location.as_ref(),
                    Some(&r.id),
                ]
                .into_iter()
                .flatten()
                .any(|field| field.to_lowercase().contains(&needle))
        })
        .cloned()
        .collect();
    let key = |r: &RecordView| r.name.trim().to_lowercase();
    match order {
        SortOrder::NameAscending => out.sort_by_key(key),
        SortOrder::NameDescending => {
            out.sort_by_key(key);
            out.reverse();
        }
        SortOrder::Status => {
            out.sort_by(|a, b| a.status.cmp(&b.status).then_with(|| key(a).cmp(&key(b))))
        }
    }
    out
}

/// A filterable, sortable table of records: an island, so its props (the records, already
/// shown in the HTML) travel to the browser with it and filtering needs no server round trip.
#[island]
pub fn RecordTable(
    records: Vec<RecordView>,
    /// "client" or "property": used in labels.
    noun: String,
    /// The column heading for `detail`.
    detail_heading: String,
    /// The filter from the address (`?q=`), applied on the server too.
    filter: String,
    /// The order from the address (`?sort=`).
    sort: String,
) -> impl IntoView {
    let (filter, set_filter) = signal(filter);
    let (sort, set_sort) = signal(SortOrder::parse(&sort));
    let total = records.len();
    let records = StoredValue::new(records);
    let shown = Memo::new(move |_| {
        records.with_value(|all| filter_and_sort(all, &filter.get(), sort.get()))
    });
    let filter_id = format!("{noun}-filter");
    let sort_id = format!("{noun}-sort");

    view! {
        <form class="toolbar" method="get" role="search" aria-label=format!("Filter {noun}s")>
            <label for=filter_id.clone()>"Filter"</label>
            <input
                id=filter_id
                name="q"
                type="search"
                prop:value=move || filter.get()
                on:input=move |ev| set_filter.set(event_target_value(&ev))
                placeholder="Name, e-mail, city, status…"
            />
            <label for=sort_id.clone()>"Sort by"</label>
            <select
                id=sort_id
                name="sort"
                on:change=move |ev| set_sort.set(SortOrder::parse(&event_target_value(&ev)))
            >
                {[(SortOrder::NameAscending, "Name (A–Z)"), (SortOrder::NameDescending, "Name (Z–A)"), (SortOrder::Status, "Status")]
                    .into_iter()
                    .map(|(order, label)| view! {
                        <option value=order.as_str() selected=move || sort.get() == order>{label}</option>
                    })
                    .collect_view()}
            </select>
            <button type="submit" class="button button--quiet">"Apply"</button>
        </form>
        <p class="muted" aria-live="polite">
            {move || {
                let n = shown.with(Vec::len);
                if n == total { format!("{total} {noun}s") } else { format!("{n} of {total} {noun}s") }
            }}
        </p>
        <div class="table-wrap">
            <table class="records">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">{detail_heading}</th>
                        <th scope="col">"Location"</th>
                        <th scope="col">"Status"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || shown.get() key=|r| r.id.clone() let:record>
                        <tr>
                            <td class="records__name">{record.name.clone()}</td>
                            <td>{record.detail.clone().unwrap_or_default()}</td>
                            <td>{record.location.clone().unwrap_or_default()}</td>
                            <td>
                                {record.status.clone().map(|status| {
                                    let class = if status == "active" { "badge badge--ok" } else { "badge badge--muted" };
                                    view! { <span class=class>{status}</span> }
                                })}
                            </td>
                        </tr>
                    </For>
                </tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str, status: &str, city: &str) -> RecordView {
        RecordView {
            id: id.into(),
            name: name.into(),
            detail: None,
            status: Some(status.into()),
            location: Some(city.into()),
        }
    }

    #[test]
    fn filters_on_any_field_and_sorts() {
        let all = vec![
            record("1", "Bruno", "active", "Porto"),
            record("2", "ana", "inactive", "Lisbon"),
            record("3", "Carla", "active", "Lisbon"),
        ];
        let names = |v: Vec<RecordView>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(
            names(filter_and_sort(&all, "", SortOrder::NameAscending)),
            ["ana", "Bruno", "Carla"]
        );
        assert_eq!(
            names(filter_and_sort(&all, "lisbon", SortOrder::NameDescending)),
            ["Carla", "ana"]
        );
        assert_eq!(
            names(filter_and_sort(&all, "", SortOrder::Status)),
            ["Bruno", "Carla", "ana"]
        );
        assert!(filter_and_sort(&all, "nobody", SortOrder::NameAscending).is_empty());
    }
}
