//! virt-up's own libvirt network, `virt-up`: a NAT network like libvirt's `default` but
//! with STP off on its bridge, made (and set to autostart) the first time an instance or
//! template needs it. Why: a new port on a bridge with STP on forwards nothing for twice
//! the kernel's minimum forward delay, 2 × 2 s, whatever libvirt's `delay='0'` says
//! (measured: the default network's first DHCP answer 4.1 s after the tap appeared). A
//! cold boot hides that wait behind the kernel's boot; a warm clone, ready in about three
//! seconds otherwise, would spend more than half of its time on it. With one NAT bridge of
//! our own there is no loop for STP to break.
//!
//! The subnet is the first 192.168.X.0/24 (X from 124) that no other libvirt network of the
//! host uses and that libvirt agrees to start: libvirt itself refuses a network whose
//! subnet is routed on the host already ("Network is already in use by interface …"), and
//! that check runs where the daemon runs, so this works the same on a remote host.

use std::net::Ipv4Addr;

/// The name of the network virt-up makes and manages.
pub const NAME: &str = "virt-up";

/// The third octets of the 192.168.X.0/24 subnets tried, in order.
const THIRD_OCTETS: std::ops::RangeInclusive<u8> = 124..=254;

/// How many subnets to try before giving up (each refused start costs a define and an
/// undefine).
pub const TRIES: usize = 8;

/// The network's XML on 192.168.`third`.0/24: NAT, STP off, DHCP over .2-.254. The bridge
/// name is left to libvirt (the next free virbrN).
pub fn xml(third: u8) -> String {
    let net = format!("192.168.{third}");
    format!(
        "<network>\n  <name>{NAME}</name>\n  <forward mode='nat'/>\n  \
         <bridge stp='off' delay='0'/>\n  \
         <ip address='{net}.1' netmask='255.255.255.0'>\n    \
         <dhcp>\n      <range start='{net}.2' end='{net}.254'/>\n    </dhcp>\n  </ip>\n\
         </network>\n"
    )
}

/// The host's address on 192.168.`third`.0/24, the network's gateway.
pub fn gateway(third: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, third, 1)
}

/// The subnets to try, given the IPv4 addresses other networks of the host use: those
/// whose /24 holds none of them.
pub fn candidates(used: &[Ipv4Addr]) -> Vec<u8> {
    THIRD_OCTETS
        .filter(|&third| {
            !used
                .iter()
                .any(|ip| matches!(ip.octets(), [192, 168, t, _] if t == third))
        })
        .take(TRIES)
        .collect()
}

/// The IPv4 addresses (`<ip address='…'>`) in a network's XML.
pub fn addresses(network_xml: &str) -> Vec<Ipv4Addr> {
    network_xml
        .split("<ip ")
        .skip(1)
        // The split took "<ip " off: put the space back for `attr`.
        .filter_map(|chunk| {
            super::dhcp::attr(&format!(" {chunk}"), "address")?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether libvirt refused to start the network because its subnet is in use on the host
/// (so the next subnet may work), rather than for a reason another subnet cannot mend.
pub fn is_subnet_clash(message: &str) -> bool {
    message.contains("already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xml_is_a_nat_network_without_stp_on_its_subnet() {
        let x = xml(124);
        assert!(x.contains("<name>virt-up</name>"), "{x}");
        assert!(x.contains("<forward mode='nat'/>"), "{x}");
        assert!(x.contains("stp='off'"), "{x}");
        assert!(x.contains("<ip address='192.168.124.1'"), "{x}");
        assert!(
            x.contains("<range start='192.168.124.2' end='192.168.124.254'/>"),
            "{x}"
        );
        assert_eq!(addresses(&x), vec![Ipv4Addr::new(192, 168, 124, 1)]);
    }

    #[test]
    fn candidates_skip_subnets_other_networks_use() {
        let default = "<network><name>default</name><bridge name='virbr0' stp='on' delay='0'/>\
            <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp/></ip>\
            <ip family=\"ipv4\" address=\"192.168.125.1\" prefix=\"24\"/></network>";
        let used = addresses(default);
        assert_eq!(
            used,
            vec![
                Ipv4Addr::new(192, 168, 122, 1),
                Ipv4Addr::new(192, 168, 125, 1)
            ]
        );
        let c = candidates(&used);
        assert_eq!(c[..3], [124, 126, 127]);
        assert_eq!(c.len(), TRIES);
        assert!(candidates(&[]).starts_with(&[124, 125]));
    }

    #[test]
    fn only_a_subnet_in_use_is_worth_another_try() {
        assert!(is_subnet_clash(
            "internal error: Network is already in use by interface eth0"
        ));
        assert!(!is_subnet_clash("Cannot check dnsmasq binary"));
    }
}
