//! DHCP reservations on a libvirt network: a `<host mac ip>` entry per instance, so that
//! dnsmasq answers it at once with a known address. Measured here (dnsmasq 2.90): a new
//! client's dynamic address came 3.07 s after its DISCOVER (dnsmasq first pings the address
//! it means to offer, to see that it is free), a reserved one in 0.07 s.

use super::{libvirt_error, xml_escape};
use crate::error::Result;
use std::net::Ipv4Addr;
use virt::network::Network;

/// An IPv4 subnet of the network that has a DHCP range.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DhcpRange {
    /// The host's own address on the network (the gateway).
    pub gateway: Ipv4Addr,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    /// The reservations already there: (MAC, address).
    pub hosts: Vec<(Option<String>, Ipv4Addr)>,
}

/// What to do for a MAC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Choice {
    /// It has a reservation already (an earlier create of the same name).
    Reserved(Ipv4Addr),
    /// Reserve this free address.
    New(Ipv4Addr),
    /// No range, or no free address in it.
    Nothing,
}

/// The IPv4 DHCP ranges in a network's XML.
pub(super) fn ranges(network_xml: &str) -> Vec<DhcpRange> {
    network_xml
        .split("<ip ")
        .skip(1)
        .filter_map(|chunk| {
            let chunk = &chunk[..chunk.find("</ip>")?];
            // The split took "<ip " off: put the space back for `attr`.
            let head = format!(" {}", &chunk[..chunk.find('>')?]);
            if attr(&head, "family").is_some_and(|f| f != "ipv4") {
                return None;
            }
            let gateway = attr(&head, "address")?.parse().ok()?;
            let range = &chunk[chunk.find("<range ")?..];
            let hosts = chunk
                .split("<host ")
                .skip(1)
                .filter_map(|h| {
                    let h = format!(" {}", &h[..h.find('>')?]);
                    Some((attr(&h, "mac"), attr(&h, "ip")?.parse().ok()?))
                })
                .collect();
            Some(DhcpRange {
                gateway,
                start: attr(range, "start")?.parse().ok()?,
                end: attr(range, "end")?.parse().ok()?,
                hosts,
            })
        })
        .collect()
}

/// The value of `name='...'` (or "...") in a tag's text.
pub(super) fn attr(tag: &str, name: &str) -> Option<String> {
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let at = tag.find(&format!(" {name}="))? + name.len() + 2;
    let quote = tag[at..].chars().next()?;
    let rest = &tag[at + 1..];
    Some(rest[..rest.find(quote)?].to_string())
}

/// The address for `mac`: its reservation if it has one; else the address it holds a
/// lease on (so that a re-created instance keeps its address), unless another MAC has it
/// reserved; else the first address of the range nobody holds or has reserved.
pub(super) fn choose(ranges: &[DhcpRange], leases: &[(String, Ipv4Addr)], mac: &str) -> Choice {
    let same = |m: &str| m.eq_ignore_ascii_case(mac);
    for r in ranges {
        if let Some((_, ip)) = r.hosts.iter().find(|(m, _)| m.as_deref().is_some_and(same)) {
            return Choice::Reserved(*ip);
        }
    }
    let reserved = |ip: &Ipv4Addr| ranges.iter().any(|r| r.hosts.iter().any(|(_, h)| h == ip));
    let in_range = |ip: &Ipv4Addr| ranges.iter().any(|r| (r.start..=r.end).contains(ip));
    if let Some((_, ip)) = leases
        .iter()
        .find(|(m, ip)| same(m) && in_range(ip) && !reserved(ip))
    {
        return Choice::New(*ip);
    }
    let taken = |ip: &Ipv4Addr| {
        reserved(ip)
            || leases.iter().any(|(_, l)| l == ip)
            || ranges.iter().any(|r| r.gateway == *ip)
    };
    ranges
        .iter()
        .flat_map(|r| (u32::from(r.start)..=u32::from(r.end)).map(Ipv4Addr::from))
        .find(|ip| !taken(ip))
        .map_or(Choice::Nothing, Choice::New)
}

/// The `<host>` element of a reservation.
pub(super) fn host_xml(mac: &str, ip: Option<Ipv4Addr>) -> String {
    match ip {
        Some(ip) => format!("<host mac='{}' ip='{ip}'/>", xml_escape(mac)),
        None => format!("<host mac='{}'/>", xml_escape(mac)),
    }
}

/// The network's current IPv4 leases: (MAC, address).
#[allow(unsafe_code)]
pub(super) fn leases(net: &Network) -> Result<Vec<(String, Ipv4Addr)>> {
    use std::ffi::CStr;
    let mut list: *mut virt::sys::virNetworkDHCPLeasePtr = std::ptr::null_mut();
    // SAFETY: the network pointer is valid for the borrow of `net`; a null MAC asks for
    // every lease; libvirt allocates `list` and its entries, which are freed below.
    let n =
        unsafe { virt::sys::virNetworkGetDHCPLeases(net.as_ptr(), std::ptr::null(), &mut list, 0) };
    if n < 0 {
        let e = virt::error::Error::last_error();
        // A driver with no DHCP server (libvirt's test driver) has no leases to read.
        if matches!(
            e.code(),
            virt::error::ErrorNumberEnum::Known(virt::error::ErrorNumber::NoSupport)
        ) {
            return Ok(Vec::new());
        }
        return Err(libvirt_error("reading the network's DHCP leases", e));
    }
    let mut out = Vec::new();
    for i in 0..n as usize {
        // SAFETY: libvirt returned `n` valid lease pointers; their strings are
        // NUL-terminated or null; each lease is freed once, then the array.
        unsafe {
            let lease = *list.add(i);
            let text = |p: *mut std::os::raw::c_char| {
                (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
            };
            if let (Some(mac), Some(ip)) = (text((*lease).mac), text((*lease).ipaddr)) {
                if let Ok(ip) = ip.parse() {
                    out.push((mac, ip));
                }
            }
            virt::sys::virNetworkDHCPLeaseFree(lease);
        }
    }
    if !list.is_null() {
        // SAFETY: the array libvirt allocated, its entries freed above.
        unsafe { libc::free(list.cast()) };
    }
    Ok(out)
}

/// Add or remove the `<host>` entry, in the running network and its persistent definition.
pub(super) fn update(net: &Network, add: bool, xml: &str) -> Result<()> {
    let mut flags = 0;
    if net.is_active().unwrap_or(false) {
        flags |= virt::sys::VIR_NETWORK_UPDATE_AFFECT_LIVE;
    }
    if net.is_persistent().unwrap_or(false) {
        flags |= virt::sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    }
    let command = if add {
        virt::sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
    } else {
        virt::sys::VIR_NETWORK_UPDATE_COMMAND_DELETE
    };
    net.update(
        command,
        virt::sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
        -1,
        xml,
        flags,
    )
    .map_err(|e| {
        let what = if add { "adding" } else { "removing" };
        libvirt_error(format!("{what} the DHCP reservation {xml}"), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "<network><name>default</name>\
        <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>\
        <range start='192.168.122.2' end='192.168.122.5'/>\
        <host mac='52:54:00:00:00:aa' ip='192.168.122.2'/>\
        <host name='other' ip='192.168.122.4'/>\
        </dhcp></ip>\
        <ip family='ipv6' address='fd00::1' prefix='64'><dhcp><range start='fd00::2' end='fd00::9'/></dhcp></ip>\
        </network>";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ranges_and_their_hosts_are_read_and_ipv6_left_out() {
        let r = ranges(NET);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].gateway, r[0].start, r[0].end),
            (
                ip("192.168.122.1"),
                ip("192.168.122.2"),
                ip("192.168.122.5")
            )
        );
        assert_eq!(
            r[0].hosts,
            vec![
                (Some("52:54:00:00:00:aa".into()), ip("192.168.122.2")),
                (None, ip("192.168.122.4"))
            ]
        );
    }

    #[test]
    fn a_mac_with_a_reservation_keeps_it() {
        assert_eq!(
            choose(&ranges(NET), &[], "52:54:00:00:00:AA"),
            Choice::Reserved(ip("192.168.122.2"))
        );
    }

    #[test]
    fn a_new_mac_gets_the_first_address_nobody_has_reserved_or_leased() {
        let leases = [("52:54:00:00:00:bb".to_string(), ip("192.168.122.3"))];
        assert_eq!(
            choose(&ranges(NET), &leases, "52:54:00:00:00:cc"),
            Choice::New(ip("192.168.122.5"))
        );
        assert_eq!(
            choose(&ranges(NET), &[], "52:54:00:00:00:cc"),
            Choice::New(ip("192.168.122.3"))
        );
    }

    #[test]
    fn a_mac_keeps_the_address_it_holds_a_lease_on_unless_it_is_reserved_for_another() {
        let leases = [("52:54:00:00:00:cc".to_string(), ip("192.168.122.5"))];
        assert_eq!(
            choose(&ranges(NET), &leases, "52:54:00:00:00:cc"),
            Choice::New(ip("192.168.122.5"))
        );
        let leases = [("52:54:00:00:00:cc".to_string(), ip("192.168.122.4"))];
        assert_eq!(
            choose(&ranges(NET), &leases, "52:54:00:00:00:cc"),
            Choice::New(ip("192.168.122.3"))
        );
    }

    #[test]
    fn a_full_range_or_a_network_without_dhcp_gives_nothing() {
        let leases = [
            ("52:54:00:00:00:01".to_string(), ip("192.168.122.3")),
            ("52:54:00:00:00:02".to_string(), ip("192.168.122.5")),
        ];
        assert_eq!(
            choose(&ranges(NET), &leases, "52:54:00:00:00:cc"),
            Choice::Nothing
        );
        let bare = "<network><ip address='10.0.0.1' prefix='24'></ip></network>";
        assert_eq!(
            choose(&ranges(bare), &[], "52:54:00:00:00:cc"),
            Choice::Nothing
        );
    }

    #[test]
    fn host_xml_escapes_the_mac() {
        assert_eq!(
            host_xml("a'b", Some(ip("10.0.0.2"))),
            "<host mac='a&apos;b' ip='10.0.0.2'/>"
        );
        assert_eq!(
            host_xml("52:54:00:00:00:01", None),
            "<host mac='52:54:00:00:00:01'/>"
        );
    }
}
