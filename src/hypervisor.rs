//! The hypervisor boundary: the few operations virt-up needs, behind a trait, with the
//! libvirt implementation on the `virt` crate. Tests of this code use libvirt's test driver
//! (`test:///default`); the real daemon is exercised by the real-VM tier.

use crate::error::{Error, Result};
use std::path::PathBuf;
use virt::connect::Connect;
use virt::domain::Domain;

/// Where libvirt should look for a guest's addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LibvirtAddressSource {
    Lease,
    Agent,
}

/// One address of a guest interface.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestAddress {
    pub mac: Option<String>,
    pub ip: String,
}

pub trait Hypervisor: Send + Sync {
    fn uri(&self) -> String;
    /// The directory of a `dir` storage pool; an error if the pool is missing or inactive.
    fn pool_path(&self, pool: &str) -> Result<PathBuf>;
    /// Let libvirt notice volumes we created or removed behind its back.
    fn refresh_pool(&self, pool: &str);
    /// An error if the network is missing or not active.
    fn check_network(&self, network: &str) -> Result<()>;
    fn define(&self, xml: &str) -> Result<()>;
    fn start(&self, name: &str) -> Result<()>;
    fn set_autostart(&self, name: &str, on: bool) -> Result<()>;
    fn is_defined(&self, name: &str) -> Result<bool>;
    fn is_running(&self, name: &str) -> Result<bool>;
    /// Ask the guest to power off (ACPI).
    fn shutdown(&self, name: &str) -> Result<()>;
    /// Stop at once; no error if it is not running or not defined.
    fn destroy(&self, name: &str) -> Result<()>;
    /// Remove the definition; no error if it is not defined.
    fn undefine(&self, name: &str) -> Result<()>;
    fn addresses(&self, name: &str, source: LibvirtAddressSource) -> Result<Vec<GuestAddress>>;
    /// All domains and which of them run, in two calls (for fast listings).
    fn domains(&self) -> Result<DomainNames>;
}

/// Names of the defined domains and of the running ones.
#[derive(Debug, Default)]
pub struct DomainNames {
    pub defined: std::collections::HashSet<String>,
    pub running: std::collections::HashSet<String>,
}

/// libvirt through the `virt` crate.
pub struct Libvirt {
    conn: Connect,
}

fn libvirt_error(what: impl Into<String>, e: virt::error::Error) -> Error {
    Error::Libvirt {
        what: what.into(),
        message: e.message().to_string(),
        hint: String::new(),
    }
}

impl Libvirt {
    pub fn connect(uri: &str) -> Result<Libvirt> {
        // libvirt prints every error to stderr unless told not to; we report them ourselves.
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(|e| {
            let message = e.message().to_string();
            let hint = if message.contains("socket") || message.contains("No such file") {
                "\nis libvirtd running? Start it with 'systemctl start libvirtd' (without systemd: 'libvirtd -d; virtlogd -d')".to_string()
            } else {
                String::new()
            };
            Error::Libvirt {
                what: format!("cannot connect to {uri}"),
                message,
                hint,
            }
        })?;
        Ok(Libvirt { conn })
    }

    fn domain(&self, name: &str) -> Result<Option<Domain>> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(d) => Ok(Some(d)),
            Err(e)
                if e.code() == virt::enumutil::Enum::Known(virt::error::ErrorNumber::NoDomain) =>
            {
                Ok(None)
            }
            Err(e) => Err(libvirt_error(format!("looking up domain '{name}'"), e)),
        }
    }

    fn existing(&self, name: &str) -> Result<Domain> {
        self.domain(name)?.ok_or_else(|| Error::Libvirt {
            what: format!("domain '{name}'"),
            message: "no such domain".into(),
            hint: String::new(),
        })
    }
}

impl Hypervisor for Libvirt {
    fn uri(&self) -> String {
        self.conn.uri().unwrap_or_default()
    }

    fn pool_path(&self, pool: &str) -> Result<PathBuf> {
        let missing = |message: String| {
            Error::Libvirt {
            what: format!("storage pool '{pool}'"),
            message,
            hint: format!(
                "\ndefine and start it, e.g.: virsh pool-define-as {pool} dir --target /var/lib/libvirt/images && virsh pool-start {pool}"
            ),
        }
        };
        let p = self
            .conn
            .lookup_storage_pool_by_name(pool)
            .map_err(|e| missing(e.message().to_string()))?;
        if !p.is_active().unwrap_or(false) {
            return Err(missing("the pool is not active".into()));
        }
        let xml = p
            .xml_desc(0)
            .map_err(|e| libvirt_error(format!("storage pool '{pool}'"), e))?;
        xml_text(&xml, "path").map(PathBuf::from).ok_or_else(|| {
            missing("the pool has no target path (only 'dir' pools are supported)".into())
        })
    }

    fn refresh_pool(&self, pool: &str) {
        if let Ok(p) = self.conn.lookup_storage_pool_by_name(pool) {
            let _ = p.refresh(0);
        }
    }

    fn check_network(&self, network: &str) -> Result<()> {
        let problem = match self.conn.lookup_network_by_name(network) {
            Ok(n) if n.is_active().unwrap_or(false) => return Ok(()),
            Ok(_) => "the network is not active".to_string(),
            Err(e) => e.message().to_string(),
        };
        Err(Error::Libvirt {
            what: format!("network '{network}'"),
            message: problem,
            hint: format!("\nstart it with: virsh net-start {network}"),
        })
    }

    fn define(&self, xml: &str) -> Result<()> {
        self.conn
            .define_domain_xml(xml)
            .map(|_| ())
            .map_err(|e| libvirt_error("defining domain", e))
    }

    fn start(&self, name: &str) -> Result<()> {
        self.existing(name)?
            .create()
            .map_err(|e| libvirt_error(format!("starting domain '{name}'"), e))
    }

    fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        self.existing(name)?
            .set_autostart(on)
            .map(|_| ())
            .map_err(|e| libvirt_error(format!("autostart of domain '{name}'"), e))
    }

    fn is_defined(&self, name: &str) -> Result<bool> {
        Ok(self.domain(name)?.is_some())
    }

    fn is_running(&self, name: &str) -> Result<bool> {
        Ok(match self.domain(name)? {
            Some(d) => d.is_active().unwrap_or(false),
            None => false,
        })
    }

    fn shutdown(&self, name: &str) -> Result<()> {
        self.existing(name)?
            .shutdown()
            .map_err(|e| libvirt_error(format!("shutting down '{name}'"), e))
    }

    fn destroy(&self, name: &str) -> Result<()> {
        match self.domain(name)? {
            Some(d) if d.is_active().unwrap_or(false) => d
                .destroy()
                .map_err(|e| libvirt_error(format!("stopping domain '{name}'"), e)),
            _ => Ok(()),
        }
    }

    fn undefine(&self, name: &str) -> Result<()> {
        match self.domain(name)? {
            Some(d) => d
                .undefine()
                .map_err(|e| libvirt_error(format!("undefining domain '{name}'"), e)),
            None => Ok(()),
        }
    }

    fn addresses(&self, name: &str, source: LibvirtAddressSource) -> Result<Vec<GuestAddress>> {
        let src = match source {
            LibvirtAddressSource::Lease => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            LibvirtAddressSource::Agent => virt::sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
        };
        let ifaces = self
            .existing(name)?
            .interface_addresses(src, 0)
            .map_err(|e| libvirt_error(format!("addresses of '{name}'"), e))?;
        Ok(ifaces
            .into_iter()
            .flat_map(|i| {
                let mac = i.hwaddr.clone();
                i.addrs.into_iter().map(move |a| GuestAddress {
                    mac: mac.clone(),
                    ip: a.addr,
                })
            })
            .collect())
    }

    fn domains(&self) -> Result<DomainNames> {
        Ok(DomainNames {
            defined: self.names(0)?,
            running: self.names(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)?,
        })
    }
}

impl Libvirt {
    fn names(&self, flags: u32) -> Result<std::collections::HashSet<String>> {
        let domains = self
            .conn
            .list_all_domains(flags)
            .map_err(|e| libvirt_error("listing domains", e))?;
        Ok(domains.iter().filter_map(|d| d.name().ok()).collect())
    }
}

/// The text of the first `<tag>` element in a small libvirt XML document.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_driver_define_start_destroy_undefine() {
        let hv = Libvirt::connect("test:///default").unwrap();
        let xml = "<domain type='test'><name>vu-unit</name><memory>1024</memory><os><type>hvm</type></os></domain>";
        hv.define(xml).unwrap();
        assert!(hv.is_defined("vu-unit").unwrap());
        hv.start("vu-unit").unwrap();
        assert!(hv.is_running("vu-unit").unwrap());
        hv.destroy("vu-unit").unwrap();
        assert!(!hv.is_running("vu-unit").unwrap());
        hv.undefine("vu-unit").unwrap();
        assert!(!hv.is_defined("vu-unit").unwrap());
        // Idempotent on a missing domain.
        hv.destroy("vu-unit").unwrap();
        hv.undefine("vu-unit").unwrap();
    }

    #[test]
    fn test_driver_pool_and_network() {
        let hv = Libvirt::connect("test:///default").unwrap();
        assert_eq!(
            hv.pool_path("default-pool").unwrap(),
            PathBuf::from("/default-pool")
        );
        let err = hv.pool_path("nope").unwrap_err().to_string();
        assert!(
            err.contains("storage pool 'nope'") && err.contains("pool-define-as"),
            "{err}"
        );
        hv.check_network("default").unwrap();
        let err = hv.check_network("nope").unwrap_err().to_string();
        assert!(err.contains("virsh net-start nope"), "{err}");
    }

    #[test]
    fn dead_daemon_says_how_to_start_it() {
        let err = Libvirt::connect("qemu+unix:///system?socket=/nonexistent/sock")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("libvirtd -d"), "{err}");
    }

    #[test]
    fn xml_text_unescapes() {
        assert_eq!(
            xml_text(
                "<pool><target><path>/a&amp;b</path></target></pool>",
                "path"
            )
            .as_deref(),
            Some("/a&b")
        );
    }
}
