//! What a delivery does to an organization's installations, as a pure judgement over what the
//! organization has (so every interleaving of deliveries can be checked without a database).
//! An installation is (organization, client id):
//! - a tombstone (uninstalled) never becomes active again; an install for it is ignored;
//! - an uninstall naming a client tombstones it, even if its install was never seen (an
//!   uninstall that overtook its install);
//! - a new client for an organization with another active installation replaces it, unless
//!   both carry event times and the new one is older (stale: it is recorded as a tombstone, so
//!   a late copy of it can never install either);
//! - an uninstall without a client applies to the active installation, unless its event time
//!   is older than that installation's;
//! - an uninstall's event time is remembered for the organization: an installation installed
//!   before it was gone by then (an uninstall names the installation active at its time),
//!   whichever of the two arrives first; likewise an install's event time ends an older active
//!   installation even when the install itself is a tombstone's.
//!
//! With event times on every delivery the outcome is the Workspace's, whatever the order of
//! arrival (the property test below). Only the Workspace's event times order events:
//! `webhook-timestamp` is the attempt time and changes on every retry.

/// What is known of one installation of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub client_id: String,
    pub active: bool,
    /// The event time of its install, if it said (Unix seconds).
    pub installed_event_at: Option<i64>,
}

/// What is known of the organization: its installations, and the event time of its latest
/// uninstall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Organization {
    pub installations: Vec<Known>,
    pub uninstalled_event_at: Option<i64>,
}

/// The facts of a delivery the judgement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact<'a> {
    Installed {
        client_id: &'a str,
        at: Option<i64>,
    },
    Uninstalled {
        client_id: Option<&'a str>,
        at: Option<i64>,
    },
}

/// A write the judgement asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The delivered installation becomes the organization's active one.
    Activate,
    /// This known installation becomes a tombstone.
    Tombstone(String),
    /// A tombstone for a client never seen active (uninstalled before its install arrived, or
    /// an install that arrived stale).
    TombstoneUnseen(String),
    /// The organization's latest uninstall happened at this event time.
    UninstalledAt(i64),
}

/// Why a delivery did what it did: the `reason` of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Installed,
    Replaced,
    Uninstalled,
    UninstalledBeforeInstall,
    AlreadyInstalled,
    AlreadyUninstalled,
    Tombstoned,
    Stale,
    NoActiveInstallation,
    Duplicate,
    UnknownType,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Installed => "installed",
            Reason::Replaced => "replaced",
            Reason::Uninstalled => "uninstalled",
            Reason::UninstalledBeforeInstall => "uninstalled_before_install",
            Reason::AlreadyInstalled => "already_installed",
            Reason::AlreadyUninstalled => "already_uninstalled",
            Reason::Tombstoned => "tombstoned",
            Reason::Stale => "stale",
            Reason::NoActiveInstallation => "no_active_installation",
            Reason::Duplicate => "duplicate",
            Reason::UnknownType => "unknown_type",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub changes: Vec<Change>,
    pub reason: Reason,
    /// Whether the delivery did what it says (an install installed, an uninstall removed);
    /// a stale or ignored one may still leave a record behind.
    pub applied: bool,
}

impl Judgement {
    fn none(reason: Reason) -> Self {
        Self {
            changes: Vec::new(),
            reason,
            applied: false,
        }
    }

    fn with(changes: Vec<Change>, reason: Reason, applied: bool) -> Self {
        Self {
            changes,
            reason,
            applied,
        }
    }
}

/// What `fact` does, given what the organization has.
pub fn judge(fact: &Fact<'_>, organization: &Organization) -> Judgement {
    let known = &organization.installations;
    let active = known.iter().find(|k| k.active);
    let older = |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if a < b);
    match *fact {
        Fact::Installed { client_id, at } => {
            if let Some(same) = known.iter().find(|k| k.client_id == client_id) {
                if same.active {
                    return Judgement::none(Reason::AlreadyInstalled);
                }
                // Its install still tells that an older active installation was replaced then.
                let replaced = active
                    .filter(|current| older(current.installed_event_at, at))
                    .map(|current| Change::Tombstone(current.client_id.clone()));
                return Judgement::with(replaced.into_iter().collect(), Reason::Tombstoned, false);
            }
            let stale = older(at, organization.uninstalled_event_at)
                || active.is_some_and(|current| older(at, current.installed_event_at));
            if stale {
                return Judgement::with(
                    vec![Change::TombstoneUnseen(client_id.to_owned())],
                    Reason::Stale,
                    false,
                );
            }
            match active {
                None => Judgement::with(vec![Change::Activate], Reason::Installed, true),
                Some(current) => Judgement::with(
                    vec![
                        Change::Tombstone(current.client_id.clone()),
                        Change::Activate,
                    ],
                    Reason::Replaced,
                    true,
                ),
            }
        }
        Fact::Uninstalled { client_id, at } => {
            let watermark = at
                .filter(|at| {
                    organization
                        .uninstalled_event_at
                        .is_none_or(|seen| *at > seen)
                })
                .map(Change::UninstalledAt);
            let (mut changes, reason, applied) = match client_id {
                Some(client_id) => match known.iter().find(|k| k.client_id == client_id) {
                    Some(k) if k.active => (
                        vec![Change::Tombstone(client_id.to_owned())],
                        Reason::Uninstalled,
                        true,
                    ),
                    Some(_) => (Vec::new(), Reason::AlreadyUninstalled, false),
                    None => (
                        vec![Change::TombstoneUnseen(client_id.to_owned())],
                        Reason::UninstalledBeforeInstall,
                        true,
                    ),
                },
                None => match active {
                    None => (Vec::new(), Reason::NoActiveInstallation, false),
                    Some(current) if older(at, current.installed_event_at) => {
                        (Vec::new(), Reason::Stale, false)
                    }
                    Some(current) => (
                        vec![Change::Tombstone(current.client_id.clone())],
                        Reason::Uninstalled,
                        true,
                    ),
                },
            };
            // An installation active since before the uninstall's time was gone by then (an
            // uninstall names the installation active at its time), whichever it names.
            if let Some(current) = active.filter(|current| older(current.installed_event_at, at)) {
                if !changes.contains(&Change::Tombstone(current.client_id.clone())) {
                    changes.insert(0, Change::Tombstone(current.client_id.clone()));
                }
            }
            changes.extend(watermark);
            Judgement::with(changes, reason, applied)
        }
    }
}

/// The organization after `judgement` of `fact` (the store makes the same writes; the tests
/// check the rules over many interleavings with it).
pub fn apply(fact: &Fact<'_>, judgement: &Judgement, organization: &mut Organization) {
    for change in &judgement.changes {
        match change {
            Change::Activate => {
                if let Fact::Installed { client_id, at } = fact {
                    organization.installations.push(Known {
                        client_id: (*client_id).to_owned(),
                        active: true,
                        installed_event_at: *at,
                    });
                }
            }
            Change::Tombstone(client_id) => {
                if let Some(k) = organization
                    .installations
                    .iter_mut()
                    .find(|k| &k.client_id == client_id)
                {
                    k.active = false;
                }
            }
            Change::TombstoneUnseen(client_id) => organization.installations.push(Known {
                client_id: client_id.clone(),
                active: false,
                installed_event_at: None,
            }),
            Change::UninstalledAt(at) => organization.uninstalled_event_at = Some(*at),
        }
    }
}

/// Random Workspace histories for the property tests (here, on the judgement; in `store`, on
/// the database).
#[cfg(test)]
pub(crate) mod histories {
    use proptest::prelude::*;

    /// One step of a Workspace's history: install a new client (replacing the active one), or
    /// uninstall the active one, naming it or not.
    #[derive(Debug, Clone)]
    pub enum Step {
        Install,
        Uninstall { names_client: bool },
    }

    /// A delivery of a history: the client, whether an install, the client an uninstall
    /// names, its event time.
    pub type Sent = (String, bool, Option<String>, i64);

    /// The deliveries a history makes (each with its event time), and the Workspace's own final
    /// active client.
    pub fn history(steps: &[Step]) -> (Vec<Sent>, Option<String>) {
        let mut active: Option<String> = None;
        let mut deliveries = Vec::new();
        let mut clients = 0;
        for (time, step) in steps.iter().enumerate() {
            let time = i64::try_from(time).unwrap_or_default() * 10 + 10;
            match step {
                // Up to three installations of the organization: later installs are left out.
                Step::Install if clients == 3 => {}
                Step::Install => {
                    clients += 1;
                    let client = format!("app_{clients}");
                    deliveries.push((client.clone(), true, None, time));
                    active = Some(client);
                }
                Step::Uninstall { names_client } => {
                    if let Some(client) = active.take() {
                        let named = names_client.then(|| client.clone());
                        deliveries.push((client, false, named, time));
                    } else {
                        deliveries.push((String::new(), false, None, time));
                    }
                }
            }
        }
        (deliveries, active)
    }

    /// The order deliveries arrive in: shuffled by the random indices, then `replays` (earlier
    /// deliveries again) appended.
    pub fn arrival(
        len: usize,
        order: &[proptest::sample::Index],
        replays: &[proptest::sample::Index],
    ) -> Vec<usize> {
        let mut arrival: Vec<usize> = (0..len).collect();
        for (i, index) in order.iter().enumerate() {
            arrival.swap(i % len, index.index(len));
        }
        for index in replays {
            arrival.push(index.index(len));
        }
        arrival
    }

    pub fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Install),
            any::<bool>().prop_map(|names_client| Step::Uninstall { names_client }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(facts: &[Fact<'_>]) -> (Vec<Known>, Vec<Reason>) {
        let mut organization = Organization::default();
        let mut reasons = Vec::new();
        for fact in facts {
            let judgement = judge(fact, &organization);
            apply(fact, &judgement, &mut organization);
            reasons.push(judgement.reason);
        }
        (organization.installations, reasons)
    }

    fn install(client_id: &str, at: Option<i64>) -> Fact<'_> {
        Fact::Installed { client_id, at }
    }

    fn uninstall(client_id: Option<&str>, at: Option<i64>) -> Fact<'_> {
        Fact::Uninstalled { client_id, at }
    }

    fn active(known: &[Known]) -> Vec<&str> {
        known
            .iter()
            .filter(|k| k.active)
            .map(|k| k.client_id.as_str())
            .collect()
    }

    #[test]
    fn an_uninstall_that_overtakes_its_install_wins() {
        let (known, reasons) = run(&[uninstall(Some("a"), None), install("a", None)]);
        assert!(active(&known).is_empty());
        assert_eq!(
            reasons,
            [Reason::UninstalledBeforeInstall, Reason::Tombstoned]
        );
    }

    #[test]
    fn a_new_client_replaces_the_active_one_unless_it_is_older() {
        let (known, reasons) = run(&[install("a", Some(10)), install("b", Some(20))]);
        assert_eq!(active(&known), ["b"]);
        assert_eq!(reasons[1], Reason::Replaced);
        // The replaced installation stays a tombstone.
        let (known, _) = run(&[install("a", None), install("b", None), install("a", None)]);
        assert_eq!(active(&known), ["b"]);

        let (known, reasons) = run(&[install("b", Some(20)), install("a", Some(10))]);
        assert_eq!(active(&known), ["b"]);
        assert_eq!(reasons[1], Reason::Stale);
        // Without event times, the later delivery wins.
        let (known, _) = run(&[install("b", Some(20)), install("a", None)]);
        assert_eq!(active(&known), ["a"]);
    }

    #[test]
    fn an_uninstall_without_a_client_applies_to_the_active_one_unless_older() {
        let (known, reasons) = run(&[install("a", Some(20)), uninstall(None, Some(10))]);
        assert_eq!((active(&known), reasons[1]), (vec!["a"], Reason::Stale));
        let (known, reasons) = run(&[install("a", Some(20)), uninstall(None, Some(30))]);
        assert_eq!((active(&known), reasons[1]), (vec![], Reason::Uninstalled));
        let (_, reasons) = run(&[uninstall(None, None)]);
        assert_eq!(reasons, [Reason::NoActiveInstallation]);
        let (_, reasons) = run(&[
            install("a", None),
            install("a", None),
            uninstall(Some("a"), None),
            uninstall(Some("a"), None),
        ]);
        assert_eq!(
            reasons,
            [
                Reason::Installed,
                Reason::AlreadyInstalled,
                Reason::Uninstalled,
                Reason::AlreadyUninstalled
            ]
        );
    }

    #[test]
    fn an_install_older_than_a_clientless_uninstall_stays_out_whichever_arrives_first() {
        let (known, reasons) = run(&[uninstall(None, Some(30)), install("a", Some(20))]);
        assert!(active(&known).is_empty());
        assert_eq!(reasons, [Reason::NoActiveInstallation, Reason::Stale]);
        // A stale install is a tombstone: a late copy of it cannot install either.
        let (known, _) = run(&[
            install("b", Some(20)),
            install("a", Some(10)),
            uninstall(None, None),
            install("a", Some(10)),
        ]);
        assert!(active(&known).is_empty());
        let (known, _) = run(&[uninstall(None, Some(30)), install("a", Some(40))]);
        assert_eq!(active(&known), ["a"]);
    }

    use proptest::prelude::*;

    use super::histories::{arrival, history, step};

    proptest! {
        /// Up to three installations of one organization, delivered in any order, with
        /// duplicates (the same delivery again: the store drops it by id) and replays (an
        /// earlier delivery under a new id), with and without event times.
        #[test]
        fn any_interleaving_keeps_the_rules(
            steps in proptest::collection::vec(step(), 1..8),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
            replays in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
            timed in any::<bool>(),
        ) {
            let (deliveries, workspace_active) = history(&steps);
            let arrival = arrival(deliveries.len(), &order, &replays);
            let mut organization = Organization::default();
            let mut ever_tombstoned: Vec<String> = Vec::new();
            for &i in &arrival {
                let (client, is_install, named, time) = &deliveries[i];
                let at = timed.then_some(*time);
                let fact = if *is_install {
                    Fact::Installed { client_id: client, at }
                } else {
                    Fact::Uninstalled { client_id: named.as_deref(), at }
                };
                let judgement = judge(&fact, &organization);
                apply(&fact, &judgement, &mut organization);
                // A duplicate is judged on the state it left: it changes nothing more.
                let again = judge(&fact, &organization);
                prop_assert!(!again.applied, "a repeat of {:?} applied again: {:?}", fact, again);
                let actives: Vec<&Known> =
                    organization.installations.iter().filter(|k| k.active).collect();
                prop_assert!(actives.len() <= 1, "{organization:?}");
                for k in &organization.installations {
                    if k.active {
                        prop_assert!(!ever_tombstoned.contains(&k.client_id), "{k:?} came back");
                    } else if !ever_tombstoned.contains(&k.client_id) {
                        ever_tombstoned.push(k.client_id.clone());
                    }
                }
            }
            if timed {
                let app_active = organization
                    .installations
                    .iter()
                    .find(|k| k.active)
                    .map(|k| k.client_id.clone());
                prop_assert_eq!(app_active, workspace_active, "{:?} then {:?}", steps, arrival);
            }
        }
    }
}
