//! Which `ToSocketAddrs` values resolve without a lookup. std's impls for
//! strings (`"127.0.0.1:80"`, `("::1", 80)`) parse first and look a host
//! name up only when that fails, but that is one opaque call that may
//! block, so the sockets would send every such address to the thread pool
//! (40 µs for a datagram's `send_to` instead of 1.5 µs). Here the same
//! parse runs on the hub thread, and only names go to the pool. The types
//! are told apart by `TypeId` (lifetimes erased, so `&'a str` is `&str`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// True when `A` is `B` up to lifetimes.
fn same<A: ?Sized, B: ?Sized>() -> bool {
    typeid::of::<A>() == typeid::of::<B>()
}

/// `a` as a `B`.
///
/// # Safety
/// `A` must be `B` up to lifetimes ([`same`]). The lifetimes inside the
/// returned `B` are whatever the caller names, so nothing borrowed through
/// it may escape the caller.
unsafe fn cast<A, B>(a: &A) -> &B {
    debug_assert!(same::<A, B>());
    // SAFETY: the same type up to lifetimes (the contract), which change
    // neither layout nor validity; the result keeps `a`'s borrow.
    unsafe { &*(a as *const A).cast::<B>() }
}

/// `parse(b)` when `a` is a `B` or a `&B`; `None` for any other type. Only
/// an address comes out, so nothing borrowed through the cast escapes.
fn parse_as<A, B>(a: &A, parse: impl FnOnce(&B) -> Option<SocketAddr>) -> Option<Option<SocketAddr>> {
    if same::<A, B>() {
        // SAFETY: checked just above; `parse` returns no borrow.
        return Some(parse(unsafe { cast::<A, B>(a) }));
    }
    if same::<A, &B>() {
        // SAFETY: as above.
        return Some(parse(unsafe { cast::<A, &B>(a) }));
    }
    None
}

/// `(host, port)` as std reads it before any lookup: the host is an IP
/// address literal.
fn host_port(host: &str, port: u16) -> Option<SocketAddr> {
    host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// True for std's `ToSocketAddrs` types made of addresses only (and one
/// reference to them): their `to_socket_addrs` never blocks.
pub(crate) fn numeric<A>() -> bool {
    macro_rules! any_of {
        ($($t:ty),*) => { false $(|| same::<A, $t>() || same::<A, &$t>())* };
    }
    any_of!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16), (Ipv4Addr, u16), (Ipv6Addr, u16), &[SocketAddr])
}

/// The address a string-typed `ToSocketAddrs` value (`&str`, `String`,
/// `(&str, u16)`, `(String, u16)`, or one reference to them) names, when
/// it is an address literal, exactly as std's impls parse it before any
/// lookup. `Some(None)`: a name, to look up; `None`: not a string type.
pub(crate) fn literal<A>(addr: &A) -> Option<Option<SocketAddr>> {
    None.or_else(|| parse_as::<A, &str>(addr, |s| s.parse().ok()))
        .or_else(|| parse_as::<A, String>(addr, |s| s.parse().ok()))
        .or_else(|| parse_as::<A, (&str, u16)>(addr, |(h, p)| host_port(h, *p)))
        .or_else(|| parse_as::<A, (String, u16)>(addr, |(h, p)| host_port(h, *p)))
}

#[cfg(test)]
#[allow(clippy::needless_borrows_for_generic_args)] // the references are the types under test
mod tests {
    use super::{literal, numeric};
    use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

    /// What std resolves `a` to (all of these are literals: no lookup).
    fn std_says(a: impl ToSocketAddrs) -> Option<Option<SocketAddr>> {
        Some(a.to_socket_addrs().ok()?.next())
    }

    #[test]
    fn string_literals_parse_as_std_parses_them() {
        let owned = String::from("127.0.0.1:80");
        let s = "[::1]:443";
        assert_eq!(literal(&"127.0.0.1:80"), std_says("127.0.0.1:80"));
        assert_eq!(literal(&s), std_says(s));
        assert_eq!(literal(&&s), std_says(&s), "a reference to a &str (from a &[&str])");
        assert_eq!(literal(&owned.clone()), std_says(owned.clone()));
        assert_eq!(literal(&&owned), std_says(&owned));
        assert_eq!(literal(&("10.0.0.1", 9u16)), std_says(("10.0.0.1", 9)));
        assert_eq!(literal(&&("::1", 9u16)), std_says(&("::1", 9)));
        assert_eq!(literal(&(String::from("::1"), 9u16)), std_says((String::from("::1"), 9)));
        assert_eq!(literal(&&(String::from("::1"), 9u16)), std_says(&(String::from("::1"), 9)));
        assert!(matches!(literal(&"127.0.0.1:80"), Some(Some(_))));
    }

    #[test]
    fn names_go_to_a_lookup_and_other_types_are_not_strings() {
        assert_eq!(literal(&"localhost:80"), Some(None));
        assert_eq!(literal(&("localhost", 80u16)), Some(None));
        assert_eq!(literal(&"127.0.0.1"), Some(None), "no port: std's parse fails too, and so would its lookup");
        let sa: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(literal(&sa), None, "not a string type");
        assert_eq!(literal(&("127.0.0.1", 80u32)), None, "not a std impl");
    }

    #[test]
    fn address_types_are_numeric_and_strings_are_not() {
        fn of<A: ToSocketAddrs>(_: A) -> bool {
            numeric::<A>()
        }
        let sa: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let ip: IpAddr = sa.ip();
        assert!(of(sa) && of(&sa) && of((ip, 80)) && of(&[sa][..]));
        assert!(!of("127.0.0.1:80") && !of(String::new()) && !of(("::1", 80)));
    }
}
