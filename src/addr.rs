//! Addresses written as strings (`"127.0.0.1:80"`, `("::1", 80)`) read
//! without a lookup. std's `ToSocketAddrs` for these types parses first and
//! looks a host name up only when that fails, but it is one opaque call
//! that may block, so the sockets would send every such address to the
//! thread pool (40 µs for a datagram's `send_to` instead of 1.5 µs). Here
//! the same parse runs on the hub thread; only names go to the pool.

use std::net::{IpAddr, SocketAddr};

/// `a` as a `B`, when `A` is `B` up to lifetimes.
///
/// The lifetimes inside the returned `B` are whatever the caller names, so
/// a caller must not let anything borrowed through it escape: every caller
/// below only parses and returns owned addresses.
fn cast<A, B>(a: &A) -> Option<&B> {
    if typeid::of::<A>() != typeid::of::<B>() {
        return None;
    }
    // SAFETY: `A` and `B` have the same `TypeId` once lifetimes are erased,
    // so they are the same type up to lifetimes, which do not change layout
    // or validity; the reference keeps `a`'s borrow, and (per the contract
    // above) nothing with `B`'s inner lifetimes outlives this call's caller.
    Some(unsafe { &*(a as *const A).cast::<B>() })
}

/// `(host, port)` as std reads it before any lookup: the host is an IP
/// address literal.
fn host_port(host: &str, port: u16) -> Option<SocketAddr> {
    host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// The address a string-typed `ToSocketAddrs` value (`&str`, `String`,
/// `&String`, `(&str, u16)`, `(String, u16)`) names, when it is an address
/// literal, exactly as std's impls parse it before any lookup. `None` for
/// host names and for every other type.
pub(crate) fn literal<A>(addr: &A) -> Option<SocketAddr> {
    if let Some(s) = cast::<A, &str>(addr) {
        return s.parse().ok();
    }
    if let Some(s) = cast::<A, String>(addr) {
        return s.parse().ok();
    }
    if let Some(s) = cast::<A, &String>(addr) {
        return s.parse().ok();
    }
    if let Some((host, port)) = cast::<A, (&str, u16)>(addr) {
        return host_port(host, *port);
    }
    if let Some((host, port)) = cast::<A, (String, u16)>(addr) {
        return host_port(host, *port);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::literal;
    use std::net::{SocketAddr, ToSocketAddrs};

    /// What std resolves `a` to (all of these are literals: no lookup).
    fn std_says(a: impl ToSocketAddrs) -> Option<SocketAddr> {
        a.to_socket_addrs().ok()?.next()
    }

    #[test]
    fn string_literals_parse_as_std_parses_them() {
        let owned = String::from("127.0.0.1:80");
        assert_eq!(literal(&"127.0.0.1:80"), std_says("127.0.0.1:80"));
        assert_eq!(literal(&"[::1]:443"), std_says("[::1]:443"));
        assert_eq!(literal(&owned.clone()), std_says(owned.clone()));
        assert_eq!(literal(&&owned), std_says(&owned));
        assert_eq!(literal(&("10.0.0.1", 9u16)), std_says(("10.0.0.1", 9)));
        assert_eq!(literal(&("::1", 9u16)), std_says(("::1", 9)));
        assert_eq!(literal(&(String::from("::1"), 9u16)), std_says((String::from("::1"), 9)));
        assert!(literal(&"127.0.0.1:80").is_some());
    }

    #[test]
    fn names_and_other_types_are_left_to_std() {
        assert_eq!(literal(&"localhost:80"), None);
        assert_eq!(literal(&("localhost", 80u16)), None);
        assert_eq!(literal(&"127.0.0.1"), None, "no port: std's parse fails too");
        let sa: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(literal(&sa), None, "not a string type");
        assert_eq!(literal(&("127.0.0.1", 80u32)), None, "not a std impl");
    }
}
