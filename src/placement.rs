//! Which libvirt host each new instance of one command goes on, when settings.cfg has
//! `[host NAME]` sections. Pure: the caller asks each host what it has (free memory,
//! running instances), gives that here with the host's capacity settings, and gets a host
//! for every instance, or an error naming every host's figure and nothing placed.
//!
//! The caller (the create flow) does, for an [`crate::config::plan::InstancePlan`] whose
//! `hosts` is not empty (`--host` already made it that one host):
//!
//! ```
//! use virt_up::placement::{place, Candidate, Instance, Load};
//! // For each of plan.hosts: its HostEntry's capacity, and what its libvirt said
//! // (Hypervisor::free_memory, its running instances) or why it did not answer.
//! let hosts = [
//!     Candidate {
//!         name: "lab2".into(),
//!         max_instances: Some(3),
//!         keep_free_bytes: 2 << 30,
//!         load: Ok(Load { free_bytes: 16 << 30, running: 1 }),
//!     },
//!     Candidate {
//!         name: "lab3".into(),
//!         max_instances: None,
//!         keep_free_bytes: 0,
//!         load: Err("cannot connect to qemu+ssh://root@lab3/system: …".into()),
//!     },
//! ];
//! let wanted: Vec<Instance> = ["web1", "web2"]
//!     .iter()
//!     .map(|name| Instance { name: name.to_string(), memory_bytes: 512 << 20 })
//!     .collect();
//! let placed = place(&wanted, &hosts).unwrap(); // or a NoRoom error: exit 4
//! assert_eq!(placed[1].instance, "web2");
//! assert_eq!(placed[1].host, "lab2");
//! ```
//!
//! The rules:
//! - Only hosts that answered are candidates.
//! - A host is full for an instance when its running instances plus those this command
//!   already put there reach its `max_instances`, or when its free memory, less what this
//!   command already put there and less its `keep_free_bytes`, is below the instance's.
//! - Of the others the one with the most room wins: free memory less what this command
//!   put there and less what it keeps free (memory kept free is not the guests', so it is
//!   not counted as room); ties go to the host with fewer instances, then to name order.
//!   So four instances over two equal hosts go two and two.
//! - The largest instances are placed first (while there is most room), equal ones in the
//!   order given; the result is in the order given.
//! - An instance that fits nowhere is a [`NoRoom`] naming it and every host's figure, and
//!   nothing is placed: all or nothing.

use std::cmp::Reverse;
use std::fmt;

/// An instance to place: its name and the memory it is given.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub memory_bytes: u64,
}

/// What a host that answered has now.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Its free memory (libvirt's virNodeGetFreeMemory).
    pub free_bytes: u64,
    /// The instances it runs, counted against `max_instances`.
    pub running: usize,
}

/// A host an instance may go on: its capacity settings and what it said.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    /// The most instances it may run; None: no limit.
    pub max_instances: Option<usize>,
    /// Memory it keeps for itself.
    pub keep_free_bytes: u64,
    /// What it has now, or why it did not answer (the error's text).
    pub load: Result<Load, String>,
}

/// Where one instance goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub instance: String,
    pub host: String,
}

/// No host has room for an instance: which, and why each host has none.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct NoRoom {
    pub instance: String,
    pub memory_bytes: u64,
    /// Every candidate, in the order given, with why it cannot take the instance.
    pub hosts: Vec<(String, Why)>,
}

/// Why a host cannot take an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// It did not answer: the error's text.
    DidNotAnswer(String),
    /// It has as many instances as it may (`placed` of them put there by this command).
    Full {
        instances: usize,
        max: usize,
        placed: usize,
    },
    /// Its free memory, less what this command put there and what it keeps free, is too
    /// little.
    Memory {
        free: u64,
        placed: u64,
        keep_free: u64,
    },
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let memory = crate::size::human(self.memory_bytes);
        write!(f, "no host has room for {} ({memory}): ", self.instance)?;
        if self.hosts.is_empty() {
            return write!(f, "there is no host to place it on");
        }
        let figures: Vec<String> = self
            .hosts
            .iter()
            .map(|(host, why)| format!("{host}: {why}"))
            .collect();
        write!(f, "{}", figures.join("; "))
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::size::human;
        match self {
            Why::DidNotAnswer(e) => write!(f, "did not answer ({e})"),
            Why::Full {
                instances,
                max,
                placed,
            } => {
                write!(f, "{instances} of max {max} instances")?;
                if *placed > 0 {
                    write!(f, " ({placed} placed by this command)")?;
                }
                Ok(())
            }
            Why::Memory {
                free,
                placed,
                keep_free,
            } => {
                write!(f, "{} free", human(*free))?;
                if *placed > 0 {
                    write!(f, ", {} of it placed by this command", human(*placed))?;
                }
                if *keep_free > 0 {
                    write!(f, ", {} kept free", human(*keep_free))?;
                }
                Ok(())
            }
        }
    }
}

/// What this command has put on one host so far.
#[derive(Debug, Clone, Copy, Default)]
struct Taken {
    count: usize,
    memory: u64,
}

/// A host for every instance, in the order of `instances`; see the module's rules.
pub fn place(instances: &[Instance], hosts: &[Candidate]) -> Result<Vec<Placed>, NoRoom> {
    let mut taken = vec![Taken::default(); hosts.len()];
    let mut chosen = vec![0; instances.len()];
    let mut order: Vec<usize> = (0..instances.len()).collect();
    // Stable: equal instances keep the order given.
    order.sort_by_key(|&i| Reverse(instances[i].memory_bytes));
    for i in order {
        let instance = &instances[i];
        let best = hosts
            .iter()
            .zip(&taken)
            .enumerate()
            .filter_map(|(h, (host, taken))| {
                let load = host.load.as_ref().ok()?;
                let room = room(host, load, taken);
                let fits = refusal(host, taken, instance).is_none();
                fits.then_some((h, room, load.running + taken.count))
            })
            .min_by_key(|&(h, room, count)| (Reverse(room), count, &hosts[h].name));
        let Some((h, _, _)) = best else {
            return Err(NoRoom {
                instance: instance.name.clone(),
                memory_bytes: instance.memory_bytes,
                hosts: hosts
                    .iter()
                    .zip(&taken)
                    .map(|(host, taken)| {
                        let why = refusal(host, taken, instance)
                            .expect("no host fits, so each has a reason");
                        (host.name.clone(), why)
                    })
                    .collect(),
            });
        };
        taken[h].count += 1;
        taken[h].memory += instance.memory_bytes;
        chosen[i] = h;
    }
    Ok(instances
        .iter()
        .zip(chosen)
        .map(|(instance, h)| Placed {
            instance: instance.name.clone(),
            host: hosts[h].name.clone(),
        })
        .collect())
}

/// The memory left for guests on `host`: free, less what this command put there, less
/// what it keeps free.
fn room(host: &Candidate, load: &Load, taken: &Taken) -> u64 {
    load.free_bytes
        .saturating_sub(taken.memory)
        .saturating_sub(host.keep_free_bytes)
}

/// Why `host` cannot take `instance` now, if it cannot.
fn refusal(host: &Candidate, taken: &Taken, instance: &Instance) -> Option<Why> {
    let load = match &host.load {
        Ok(load) => load,
        Err(e) => return Some(Why::DidNotAnswer(e.clone())),
    };
    let instances = load.running + taken.count;
    if let Some(max) = host.max_instances.filter(|max| instances >= *max) {
        return Some(Why::Full {
            instances,
            max,
            placed: taken.count,
        });
    }
    (room(host, load, taken) < instance.memory_bytes).then_some(Why::Memory {
        free: load.free_bytes,
        placed: taken.memory,
        keep_free: host.keep_free_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn host(name: &str, free: u64, running: usize) -> Candidate {
        Candidate {
            name: name.into(),
            max_instances: None,
            keep_free_bytes: 0,
            load: Ok(Load {
                free_bytes: free,
                running,
            }),
        }
    }

    fn instances(names: &[&str], memory: u64) -> Vec<Instance> {
        names
            .iter()
            .map(|n| Instance {
                name: n.to_string(),
                memory_bytes: memory,
            })
            .collect()
    }

    /// The hosts chosen, in the instances' order.
    fn hosts_of(placed: &[Placed]) -> Vec<&str> {
        placed.iter().map(|p| p.host.as_str()).collect()
    }

    #[test]
    fn four_instances_over_two_equal_hosts_go_two_and_two() {
        let web = instances(&["web1", "web2", "web3", "web4"], G);
        let placed = place(&web, &[host("lab2", 8 * G, 0), host("lab3", 8 * G, 0)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab2", "lab3", "lab2", "lab3"]);
        let names: Vec<&str> = placed.iter().map(|p| p.instance.as_str()).collect();
        assert_eq!(names, ["web1", "web2", "web3", "web4"]);
    }

    #[test]
    fn the_host_with_the_most_room_left_wins() {
        let web = instances(&["a", "b", "c", "d"], 2 * G);
        let placed = place(&web, &[host("small", 4 * G, 0), host("big", 10 * G, 0)]).unwrap();
        // big: 10, 8, 6 left; then 4 each and small has fewer instances.
        assert_eq!(hosts_of(&placed), ["big", "big", "big", "small"]);
    }

    #[test]
    fn max_instances_is_honoured_counting_those_running() {
        let mut lab2 = host("lab2", 64 * G, 2);
        lab2.max_instances = Some(3);
        let web = instances(&["web1", "web2", "web3"], G);
        let placed = place(&web, &[lab2.clone(), host("lab3", 4 * G, 0)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab2", "lab3", "lab3"]);
        let err = place(&web, &[lab2]).unwrap_err();
        assert_eq!(err.instance, "web2");
        assert_eq!(
            err.to_string(),
            "no host has room for web2 (1 GiB): lab2: 3 of max 3 instances (1 placed by this command)"
        );
    }

    #[test]
    fn memory_kept_free_is_not_room() {
        let mut lab2 = host("lab2", 16 * G, 0);
        lab2.keep_free_bytes = 15 * G + 1;
        let web = instances(&["web1"], G);
        let placed = place(&web, &[lab2.clone(), host("lab3", 2 * G, 5)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab3"]);
        // Exactly enough is enough.
        lab2.keep_free_bytes = 15 * G;
        let placed = place(&web, &[lab2.clone()]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab2"]);
        // Room, not free memory, is what is compared: 16 - 15 = 1 < 2 left on lab3.
        let placed = place(&web, &[lab2, host("lab3", 2 * G, 5)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab3"]);
    }

    #[test]
    fn a_host_that_did_not_answer_is_skipped_and_named_when_nothing_fits() {
        let mut down = host("lab4", 0, 0);
        down.load = Err("cannot connect to qemu+ssh://root@lab4/system: timed out".into());
        let web = instances(&["web1"], G);
        let placed = place(&web, &[down.clone(), host("lab2", 2 * G, 0)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab2"]);
        let mut lab3 = host("lab3", 3 * G / 2, 0);
        lab3.keep_free_bytes = G;
        let mut lab2 = host("lab2", 64 * G, 3);
        lab2.max_instances = Some(3);
        let err = place(&web, &[lab2, lab3, down]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no host has room for web1 (1 GiB): lab2: 3 of max 3 instances; lab3: 1.5 GiB free, 1 GiB kept free; lab4: did not answer (cannot connect to qemu+ssh://root@lab4/system: timed out)"
        );
    }

    #[test]
    fn all_or_nothing_the_error_names_the_instance_that_does_not_fit() {
        let web = instances(&["web1", "web2", "web3"], G);
        let err = place(&web, &[host("lab2", G, 0), host("lab3", 3 * G / 2, 0)]).unwrap_err();
        assert_eq!(err.instance, "web3");
        assert_eq!(err.memory_bytes, G);
        // What this command already put on each host is in its figure.
        assert_eq!(
            err.to_string(),
            "no host has room for web3 (1 GiB): lab2: 1 GiB free, 1 GiB of it placed by this command; lab3: 1.5 GiB free, 1 GiB of it placed by this command"
        );
    }

    #[test]
    fn ties_go_to_fewer_instances_then_name_whatever_the_order_given() {
        let web = instances(&["web1"], G);
        let a = host("a", 4 * G, 1);
        let b = host("b", 4 * G, 0);
        let c = host("c", 4 * G, 0);
        for hosts in [
            [a.clone(), b.clone(), c.clone()],
            [c.clone(), b.clone(), a.clone()],
            [b.clone(), a.clone(), c.clone()],
        ] {
            assert_eq!(hosts_of(&place(&web, &hosts).unwrap()), ["b"]);
        }
        let web = instances(&["web1", "web2", "web3"], G);
        let placed = place(&web, &[c, a, b]).unwrap();
        assert_eq!(hosts_of(&placed), ["b", "c", "a"]);
    }

    #[test]
    fn the_largest_instance_is_placed_first() {
        let mut web = instances(&["small"], G);
        web.extend(instances(&["big"], 6 * G));
        // In the order given, small would take the big host and big fit nowhere.
        let placed = place(&web, &[host("lab2", 6 * G, 0), host("lab3", 2 * G, 0)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab3", "lab2"]);
        assert_eq!(placed[0].instance, "small");
    }

    #[test]
    fn a_pinned_host_alone_takes_all_or_says_why_not() {
        let web = instances(&["web1", "web2"], G);
        let placed = place(&web, &[host("lab3", 2 * G, 0)]).unwrap();
        assert_eq!(hosts_of(&placed), ["lab3", "lab3"]);
        let err = place(&web, &[host("lab3", 3 * G / 2, 0)]).unwrap_err();
        assert_eq!(err.instance, "web2");
        assert_eq!(err.hosts.len(), 1);
    }

    #[test]
    fn no_host_at_all_is_no_room_and_says_so() {
        let err = place(&instances(&["web1"], 512 << 20), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no host has room for web1 (512 MiB): there is no host to place it on"
        );
        assert_eq!(place(&[], &[]).unwrap(), []);
    }
}
