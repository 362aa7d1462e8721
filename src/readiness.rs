//! Is the instance ready? Find its address by the configured source, then wait for an SSH
//! banner on port 22: an address alone proves nothing (an old lease shows up at once).
//! Polls briefly (no fixed sleeps of seconds) and gives up after per-phase timeouts.

use crate::error::{Error, Result};
use crate::hypervisor::{Hypervisor, LibvirtAddressSource};
use crate::records::{Login, Record};
use crate::runner::{argv, Runner};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// How long one probe waits for the guest to accept a connection. Short: a SYN that
/// reaches the guest between its DHCP answer and its address being set up is dropped, and
/// waiting for TCP to send it again (1 s) is slower than a new connection.
const PROBE_CONNECT: Duration = Duration::from_millis(250);

/// How long a guest that accepted the connection has to send its banner: each connection
/// costs it an sshd process, so a busy guest is not asked again and again.
const PROBE_BANNER: Duration = Duration::from_secs(3);

/// The pause between two SSH probes: one that found nothing cost the guest a dropped SYN.
const PROBE_POLL: Duration = Duration::from_millis(30);

/// A TCP port no guest listens on (tcpmux): a guest that has its address answers a
/// connection there with a reset from its kernel, which costs it no process.
const CLOSED_PORT: u16 = 1;

/// How long a guest whose SSH server already listens is probed on [`CLOSED_PORT`] before
/// the probe falls back to SSH banners (a guest whose firewall drops that port never
/// answers there).
const RESET_PROBES_FOR: Duration = Duration::from_secs(2);

pub use crate::config::plan::AddressSource;

/// What to wait for, and how long.
pub struct Target<'a> {
    pub domain: &'a str,
    pub mac: &'a str,
    pub hostname: &'a str,
    pub source: AddressSource,
    pub address_timeout: Duration,
    pub ssh_timeout: Duration,
    pub console_log: &'a Path,
    /// The kernel's neighbour table (`/proc/net/arp`; a fixture in tests).
    pub neighbours: PathBuf,
    /// The host the guest's SSH server is reached through, if not directly.
    pub jump: Option<Jump<'a>>,
    /// Its SSH server listened before it got its address (a warm clone's: it was started
    /// before the template was saved), so the address answering is enough.
    pub sshd_listening: bool,
}

/// An ssh destination to reach the guest through (`ssh -W`), and the runner for that ssh.
pub struct Jump<'a> {
    pub runner: &'a Runner,
    pub host: &'a str,
}

impl<'a> Jump<'a> {
    /// The jump host of `record`'s ssh options, if it has one.
    pub fn of(record: &'a Record, runner: &'a Runner) -> Option<Jump<'a>> {
        record.jump().map(|host| Jump { runner, host })
    }
}

impl Target<'_> {
    /// Whether the SSH server at `ip` answers, reached as this target says; an error when
    /// the jump host itself cannot be reached (waiting would not change that).
    fn answers(&self, ip: &str) -> Result<bool> {
        let Some(j) = &self.jump else {
            return Ok(ssh_banner(ip, PROBE_CONNECT, PROBE_BANNER));
        };
        match banner_via(j.runner, j.host, ip, Duration::from_secs(5)) {
            ViaJump::Answers => Ok(true),
            ViaJump::NotYet => Ok(false),
            ViaJump::JumpFailed(why) => Err(Error::Guest {
                name: self.domain.to_string(),
                message: format!(
                    "its SSH server is reached through {}, and ssh to that host failed: {why}",
                    j.host
                ),
            }),
        }
    }
}

/// One look for the address; `None` while it is not known yet.
pub fn probe_address(hv: &dyn Hypervisor, t: &Target) -> Result<Option<String>> {
    let from_libvirt = |src| -> Result<Option<String>> {
        let addrs = hv.addresses(t.domain, src).unwrap_or_default();
        Ok(addrs
            .into_iter()
            .filter(|a| {
                a.mac
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(t.mac))
            })
            .map(|a| a.ip)
            .find(|ip| usable_ipv4(ip)))
    };
    match t.source {
        AddressSource::Lease => from_libvirt(LibvirtAddressSource::Lease),
        AddressSource::Agent => from_libvirt(LibvirtAddressSource::Agent),
        // libvirt's own ARP source fails on these kernels ("wrong nlmsg len"); the
        // kernel's table has the entry as soon as the guest talks, so read it directly.
        AddressSource::Arp => Ok(neighbour_ip(&t.neighbours, t.mac)),
        AddressSource::Dns => Ok((t.hostname, 22)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.find(|s| s.is_ipv4() && !s.ip().is_loopback()))
            .map(|s| s.ip().to_string())),
    }
}

fn usable_ipv4(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V4(v4)) if !v4.is_loopback() && !v4.is_link_local())
}

/// The IPv4 address the neighbour table (`/proc/net/arp` format) has for `mac`.
pub fn neighbour_ip(table: &Path, mac: &str) -> Option<String> {
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device; flags 0x0 = incomplete.
        (f.len() >= 4 && f[3].eq_ignore_ascii_case(mac) && f[2] != "0x0" && usable_ipv4(f[0]))
            .then(|| f[0].to_string())
    })
}

/// True when something on `ip:22` accepts a connection within `connect` and answers
/// with an SSH identification string within `banner`.
pub fn ssh_banner(ip: &str, connect: Duration, banner: Duration) -> bool {
    match format!("{ip}:22").parse::<SocketAddr>() {
        Ok(addr) => ssh_banner_at(addr, connect, banner),
        Err(_) => false,
    }
}

/// True when the guest at `ip` answers a connection to [`CLOSED_PORT`], by a reset (or,
/// should something listen there, by accepting it): its address is up and the host has
/// its link-layer address, so the next connection's first SYN is not lost. The `nth`
/// try waits 50 ms × n, up to [`PROBE_CONNECT`]: a guest with its address resets at once,
/// and a SYN sent just before it had one is lost (measured: 0.3 s of W spent waiting for
/// it with 250 ms from the first try).
fn answers_on_closed_port(ip: &str, nth: u32) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let wait = (Duration::from_millis(50) * nth).min(PROBE_CONNECT);
    match TcpStream::connect_timeout(&SocketAddr::new(ip, CLOSED_PORT), wait) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

/// True when the server at `addr` sends an SSH identification string ("SSH-") first.
fn ssh_banner_at(addr: SocketAddr, connect: Duration, banner: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, connect) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(banner));
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < 4 {
        match stream.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    buf.starts_with(b"SSH-")
}

/// What `ssh -W ip:22 jump` saw.
enum ViaJump {
    /// The guest's SSH server sent its identification string.
    Answers,
    /// The jump host could not open the connection to the guest (not listening yet).
    NotYet,
    /// ssh to the jump host itself failed (unreachable, refused, key not accepted): the
    /// tail of its stderr.
    JumpFailed(String),
}

/// Whether an SSH server on `ip:22`, reached from `jump` (`ssh -W`), sends its
/// identification string. The connection to the jump host uses the user's own ssh
/// configuration and known_hosts, as libvirt's ssh transport does.
fn banner_via(runner: &Runner, jump: &str, ip: &str, timeout: Duration) -> ViaJump {
    let secs = timeout.as_secs().max(1).to_string();
    let forward = format!("{ip}:22");
    let args = argv([
        "-o",
        "BatchMode=yes",
        "-o",
        &format!("ConnectTimeout={secs}"),
        "-W",
        &forward,
        "--",
        jump,
    ]);
    // stdin is empty: ssh closes the channel at once, after the server's first line; its
    // exit code says nothing about that line, so the line is watched for.
    let seen = std::sync::Mutex::new(Vec::new());
    let watch = |bytes: &[u8]| seen.lock().expect("seen").extend_from_slice(bytes);
    let run = runner.tool("ssh").args(&args).watch(&watch).run();
    if seen.into_inner().expect("seen").starts_with(b"SSH-") {
        return ViaJump::Answers;
    }
    match run {
        // OpenSSH's words when the jump host cannot connect on to the guest.
        Err(crate::runner::ToolError::Failed { stderr_tail, .. })
            if stderr_tail.contains("open failed") || stderr_tail.contains("forwarding failed") =>
        {
            ViaJump::NotYet
        }
        Ok(_) => ViaJump::NotYet,
        Err(e) => ViaJump::JumpFailed(e.to_string()),
    }
}

/// The guest's SSH server must present the host key virt-up generated for it: anything
/// else means the identity was not applied (or something else answers on that address).
///
/// With `shared` (the options of a connection kept open, see
/// [`crate::records::ssh::shared_connection`]), a login as `login` with the pinned key
/// checked strictly proves it, and leaves the connection open for the user's first ssh.
/// Else, through a jump host (ssh-keyscan cannot jump), such a login without the kept
/// connection; reached directly, the key read with ssh-keyscan.
pub fn verify_host_key(
    runner: &Runner,
    record: &Record,
    (login, shared): (&Login, Option<&[String]>),
    ip: &str,
    expected: &str,
) -> Result<()> {
    let (name, console_log) = (record.name.as_str(), record.console_log.as_path());
    if shared.is_some() || record.jump().is_some() {
        let login = record.batch_login(login, ip, shared.unwrap_or_default());
        return verify_by_login(runner, name, ip, login, console_log);
    }
    let expected_blob = expected.split_whitespace().nth(1).unwrap_or_default();
    let args = argv(["-T", "10", "-t", "ed25519", ip]);
    let mut seen = String::new();
    // sshd may still be starting its listener threads: a few quick tries.
    for _ in 0..5 {
        let out = runner
            .tool("ssh-keyscan")
            .args(&args)
            .context(format!("host key of {name}"))
            .run()?;
        seen = String::from_utf8_lossy(&out.stdout).into_owned();
        if seen
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some(expected_blob))
        {
            return Ok(());
        }
        if !seen.trim().is_empty() {
            break;
        }
        std::thread::sleep(POLL);
    }
    Err(Error::Guest {
        name: name.to_string(),
        message: format!(
        "the SSH server at {ip} does not present the host key virt-up generated for this instance (the first-boot identity was not applied?); got: {}; console log: {}",
        if seen.trim().is_empty() { "no key" } else { seen.trim() },
        console_log.display()
    ),
    })
}

/// Log in through `login` (ssh, host key checked against the pinned one, no prompts) and
/// run `true`; sshd may still be starting its listener threads, so a few quick tries.
fn verify_by_login(
    runner: &Runner,
    name: &str,
    ip: &str,
    login: std::process::Command,
    console_log: &Path,
) -> Result<()> {
    let args: Vec<std::ffi::OsString> = login
        .get_args()
        .map(|a| a.to_os_string())
        .chain(["true".into()])
        .collect();
    let mut last = String::new();
    for _ in 0..5 {
        let run = runner
            .tool(login.get_program().to_string_lossy())
            .args(&args)
            .context(format!("first login to {name}"))
            .run();
        let e = match run {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        last = e.to_string();
        // OpenSSH's words for a key that is not the pinned one: no point in trying again.
        if last.contains("Host key verification failed")
            || last.contains("IDENTIFICATION HAS CHANGED")
        {
            break;
        }
        std::thread::sleep(POLL);
    }
    Err(Error::Guest {
        name: name.to_string(),
        message: format!(
            "no login to the SSH server at {ip} with the host key virt-up generated for this instance (the first-boot identity was not applied?): {last}; console log: {}",
            console_log.display()
        ),
    })
}

/// Wait for the address, then for SSH; `phase` is told when each phase ends.
pub fn wait_ready(
    hv: &dyn Hypervisor,
    t: &Target,
    phase: &mut dyn FnMut(&str, Duration),
) -> Result<String> {
    let started = Instant::now();
    let address = poll(hv, t, "address", t.address_timeout, POLL, || {
        probe_address(hv, t)
    })?;
    phase("address", started.elapsed());
    let started = Instant::now();
    // Re-probe while waiting: a stale lease can name an address the new guest never takes.
    let mut current = address;
    // A banner probe costs the guest an sshd process (fork and re-exec, about 0.2 s of CPU
    // under emulation) and the time it takes, before the first login pays the same again;
    // where sshd listens already, a reset from a closed port says the address is up.
    let by_reset = t.sshd_listening && t.jump.is_none();
    let mut resets = 0;
    poll(hv, t, "ssh", t.ssh_timeout, PROBE_POLL, || {
        let up = match by_reset && started.elapsed() < RESET_PROBES_FOR {
            true => {
                resets += 1;
                answers_on_closed_port(&current, resets)
            }
            false => t.answers(&current)?,
        };
        if up {
            return Ok(Some(()));
        }
        if let Some(fresh) = probe_address(hv, t)? {
            current = fresh;
        }
        Ok(None)
    })?;
    phase("ssh", started.elapsed());
    Ok(current)
}

/// Call `probe` every `every` until it yields, the domain stops, or the timeout passes.
fn poll<T>(
    hv: &dyn Hypervisor,
    t: &Target,
    phase: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        if !hv.is_running(t.domain)? {
            return Err(Error::Guest {
                name: t.domain.to_string(),
                message: format!(
                    "the guest stopped while waiting for its {phase}; console log: {}",
                    t.console_log.display()
                ),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                name: t.domain.to_string(),
                phase: phase.to_string(),
                seconds: timeout.as_secs(),
                console_log: t.console_log.display().to_string(),
            });
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_up_when_a_closed_port_resets() {
        // Nothing listens on port 1 here: the kernel's reset proves the address answers.
        assert!(answers_on_closed_port("127.0.0.1", 1));
        // The discard-only prefix (RFC 6666): no answer within the try's wait. (Not a
        // TEST-NET address: this machine's own gateway is 192.0.2.1.)
        assert!(!answers_on_closed_port("100::1", 1));
        assert!(!answers_on_closed_port("not-an-address", 1));
    }

    #[test]
    fn neighbour_table_lookup_by_mac() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("arp");
        std::fs::write(
            &table,
            "IP address       HW type     Flags       HW address            Mask     Device\n\
             192.168.122.9    0x1         0x0         52:54:00:aa:bb:cc     *        virbr0\n\
             192.168.122.10   0x1         0x2         52:54:00:aa:bb:cc     *        virbr0\n\
             192.168.122.11   0x1         0x2         52:54:00:dd:ee:ff     *        virbr0\n",
        )
        .unwrap();
        assert_eq!(
            neighbour_ip(&table, "52:54:00:AA:BB:CC").as_deref(),
            Some("192.168.122.10")
        );
        assert_eq!(neighbour_ip(&table, "52:54:00:00:00:00"), None);
        assert_eq!(neighbour_ip(&dir.path().join("missing"), "x"), None);
    }

    /// A local server that accepts one connection, sends `greeting` and closes.
    fn server(greeting: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<()>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // Byte by byte: a banner split over several reads still counts.
            for b in greeting {
                let _ = conn.write_all(std::slice::from_ref(b));
                let _ = conn.flush();
            }
        });
        (addr, handle)
    }

    #[test]
    fn an_ssh_banner_means_ready() {
        let (addr, handle) = server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
        assert!(ssh_banner_at(
            addr,
            Duration::from_secs(5),
            Duration::from_secs(5)
        ));
        handle.join().unwrap();
    }

    #[test]
    fn anything_else_is_not_ready() {
        for greeting in [&b"HTTP/1.1 400 Bad Request\r\n"[..], b"SS", b""] {
            let (addr, handle) = server(greeting);
            assert!(
                !ssh_banner_at(addr, Duration::from_secs(5), Duration::from_secs(5)),
                "{greeting:?}"
            );
            handle.join().unwrap();
        }
        // A closed port: bound, then released, so nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!ssh_banner_at(
            addr,
            Duration::from_millis(200),
            Duration::from_millis(200)
        ));
        assert!(!ssh_banner(
            "not-an-ip",
            Duration::from_millis(200),
            Duration::from_millis(200)
        ));
    }

    #[test]
    fn only_routable_ipv4_counts() {
        assert!(usable_ipv4("192.168.122.5"));
        assert!(!usable_ipv4("127.0.0.1"));
        assert!(!usable_ipv4("169.254.1.1"));
        assert!(!usable_ipv4("fe80::1"));
    }
}

/// How a wait for a host name from the guest agent ended.
#[derive(Debug, PartialEq)]
pub enum AgentWait {
    Reported,
    Stopped,
    TimedOut,
}

/// Poll (every 50 ms) until the guest agent of `domain` reports `wanted` as its host name,
/// the domain stops, or `limit` has passed.
pub fn wait_agent_hostname(
    hv: &dyn Hypervisor,
    domain: &str,
    wanted: &str,
    limit: Duration,
) -> Result<AgentWait> {
    let deadline = Instant::now() + limit;
    loop {
        if hv.agent_hostname(domain)?.as_deref() == Some(wanted) {
            return Ok(AgentWait::Reported);
        }
        if !hv.is_running(domain)? {
            return Ok(AgentWait::Stopped);
        }
        if Instant::now() > deadline {
            return Ok(AgentWait::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
