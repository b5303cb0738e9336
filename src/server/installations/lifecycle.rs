//! What a delivery does to an organization's installations, as a pure judgement over the rows
//! the organization has (so every interleaving of deliveries can be checked without a
//! database). An installation is (organization, client id):
//! - a tombstone (uninstalled) never becomes active again; an install for it is ignored;
//! - an uninstall naming a client tombstones it, even if its install was never seen (an
//!   uninstall that overtook its install);
//! - a new client for an organization with another active installation replaces it, unless
//!   both carry event times and the new one is older (stale);
//! - an uninstall without a client applies to the active installation, unless its event time
//!   is older than that installation's.
//!
//! Only the Workspace's event times order events: `webhook-timestamp` is the attempt time and
//! changes on every retry.

/// What is known of one installation of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub client_id: String,
    pub active: bool,
    /// The event time of its install, if it said (Unix seconds).
    pub installed_event_at: Option<i64>,
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
    /// This installation (active, or known) becomes a tombstone.
    Tombstone(String),
    /// A tombstone for a client never seen installed.
    TombstoneUnseen(String),
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
}

impl Judgement {
    fn none(reason: Reason) -> Self {
        Self {
            changes: Vec::new(),
            reason,
        }
    }

    pub fn applied(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// What `fact` does, given what the organization has (`known`: every installation of it).
pub fn judge(fact: &Fact<'_>, known: &[Known]) -> Judgement {
    let active = known.iter().find(|k| k.active);
    match *fact {
        Fact::Installed { client_id, at } => {
            if let Some(same) = known.iter().find(|k| k.client_id == client_id) {
                return Judgement::none(if same.active {
                    Reason::AlreadyInstalled
                } else {
                    Reason::Tombstoned
                });
            }
            match active {
                None => Judgement {
                    changes: vec![Change::Activate],
                    reason: Reason::Installed,
                },
                Some(current) => match (at, current.installed_event_at) {
                    (Some(new), Some(old)) if new < old => Judgement::none(Reason::Stale),
                    _ => Judgement {
                        changes: vec![
                            Change::Tombstone(current.client_id.clone()),
                            Change::Activate,
                        ],
                        reason: Reason::Replaced,
                    },
                },
            }
        }
        Fact::Uninstalled {
            client_id: Some(client_id),
            ..
        } => match known.iter().find(|k| k.client_id == client_id) {
            Some(k) if k.active => Judgement {
                changes: vec![Change::Tombstone(client_id.to_owned())],
                reason: Reason::Uninstalled,
            },
            Some(_) => Judgement::none(Reason::AlreadyUninstalled),
            None => Judgement {
                changes: vec![Change::TombstoneUnseen(client_id.to_owned())],
                reason: Reason::UninstalledBeforeInstall,
            },
        },
        Fact::Uninstalled {
            client_id: None,
            at,
        } => match active {
            None => Judgement::none(Reason::NoActiveInstallation),
            Some(current) => match (at, current.installed_event_at) {
                (Some(uninstalled), Some(installed)) if uninstalled < installed => {
                    Judgement::none(Reason::Stale)
                }
                _ => Judgement {
                    changes: vec![Change::Tombstone(current.client_id.clone())],
                    reason: Reason::Uninstalled,
                },
            },
        },
    }
}

/// The organization's installations after `judgement` of `fact` (for the store's mirror in
/// tests, and for checking the rules over many interleavings).
pub fn apply(fact: &Fact<'_>, judgement: &Judgement, known: &mut Vec<Known>) {
    for change in &judgement.changes {
        match change {
            Change::Activate => {
                if let Fact::Installed { client_id, at } = fact {
                    known.push(Known {
                        client_id: (*client_id).to_owned(),
                        active: true,
                        installed_event_at: *at,
                    });
                }
            }
            Change::Tombstone(client_id) => {
                if let Some(k) = known.iter_mut().find(|k| &k.client_id == client_id) {
                    k.active = false;
                }
            }
            Change::TombstoneUnseen(client_id) => known.push(Known {
                client_id: client_id.clone(),
                active: false,
                installed_event_at: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(facts: &[Fact<'_>]) -> (Vec<Known>, Vec<Reason>) {
        let mut known = Vec::new();
        let mut reasons = Vec::new();
        for fact in facts {
            let judgement = judge(fact, &known);
            apply(fact, &judgement, &mut known);
            reasons.push(judgement.reason);
        }
        (known, reasons)
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
}
