//! `web_fetch` (grant `web`): fetches an http(s) page as text, under an
//! egress rule. Every address a host resolves to must be public — no
//! loopback, private, link-local, unique-local, multicast or unspecified
//! address — unless the config's `egress.allow` lists its network. The
//! checked address is the one connected to (no second lookup to rebind),
//! redirects are followed by hand and each hop checked again, and the body
//! read is capped.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::Tool;

/// `web_fetch`.
pub const FETCH: Tool = Tool {
    name: "web_fetch",
    description: "Fetch a public web page (http or https) and return its text.",
    family: "web",
    writes: false,
    approval: false,
};

/// The most bytes read from a page.
const MAX_BYTES: usize = 256 * 1024;
/// The most characters returned to the model.
const MAX_CHARS: usize = 8_000;
/// Redirects followed.
const MAX_REDIRECTS: usize = 3;
/// Time for the whole fetch.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An IP network, `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ADDR/PREFIX` or a bare address.
    pub fn parse(s: &str) -> Result<Network, String> {
        let (addr, prefix) = s.split_once('/').map(|(a, p)| (a, Some(p))).unwrap_or((s, None));
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("'{s}' is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has a bad prefix length"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Whether an address is one a tool may not reach unless allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64.0.0/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Resolves `host` and picks an address the egress rule allows.
async fn checked_address(host: &str, port: u16, allow: &[Network]) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    // Every address must pass: a host with one public and one private
    // address is refused, since either could be served.
    if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip()) && !allow.iter().any(|n| n.contains(a.ip()))) {
        return Err(format!("{host} resolves to {}, a private or local address this agent may not reach", bad.ip()));
    }
    Ok(addrs[0])
}

/// Fetches a page as text.
pub async fn fetch(args: &Value, allow: &[Network]) -> Result<String, String> {
    let Some(raw) = args["url"].as_str() else { return Err("web_fetch needs a \"url\"".into()) };
    let mut url = reqwest::Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL: {e}"))?;
    tokio::time::timeout(TIMEOUT, async {
        for _ in 0..=MAX_REDIRECTS {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("only http and https URLs can be fetched, not {}", url.scheme()));
            }
            let host = url.host_str().ok_or("the URL has no host")?.to_string();
            let port = url.port_or_known_default().ok_or("the URL has no port")?;
            let addr = checked_address(&host, port, allow).await?;
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, addr)
                .build()
                .map_err(|e| e.to_string())?;
            let resp =
                client.get(url.clone()).send().await.map_err(|e| format!("fetch failed: {}", e.without_url()))?;
            if resp.status().is_redirection() {
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or("a redirect without a location")?;
                url = url.join(next).map_err(|e| format!("bad redirect: {e}"))?;
                continue;
            }
            if !resp.status().is_success() {
                return Err(format!("the page answered HTTP {}", resp.status().as_u16()));
            }
            let mut body = Vec::new();
            let mut resp = resp;
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("fetch failed: {}", e.without_url()))? {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_BYTES {
                    body.truncate(MAX_BYTES);
                    break;
                }
            }
            return Ok(text_of(&String::from_utf8_lossy(&body)));
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
}

/// The visible text of an HTML page (or the text itself), cut to size.
fn text_of(body: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let lower = body.to_ascii_lowercase();
    let mut skip_until: Option<&str> = None;
    let mut i = 0;
    let bytes = body.as_bytes();
    while i < bytes.len() {
        if let Some(end) = skip_until {
            match lower[i..].find(end) {
                Some(j) => {
                    i += j + end.len();
                    skip_until = None;
                    continue;
                }
                None => break,
            }
        }
        if lower[i..].starts_with("<script") {
            skip_until = Some("</script>");
            continue;
        }
        if lower[i..].starts_with("<style") {
            skip_until = Some("</style>");
            continue;
        }
        let c = body[i..].chars().next().unwrap_or(' ');
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
        i += c.len_utf8();
    }
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(MAX_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn networks_parse_and_match() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.9.9.9".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(Network::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Network::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
    }

    #[test]
    fn html_becomes_visible_text() {
        let html = "<html><head><style>p{}</style><script>var x = '<b>';</script></head><body><h1>Status</h1><p>All &amp; good</p></body></html>";
        assert_eq!(text_of(html), "Status All &amp; good");
    }
}
