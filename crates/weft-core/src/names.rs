//! Names for the links weft creates. Interface names are limited to 15 bytes.

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Prefix of every host-side veth weft creates.
pub const HOST_VETH_PREFIX: &str = "wv";

/// The node-side name of a pod's veth: the same for the same attachment on every run and
/// every build (FNV-1a, not std's hasher, whose output may change between Rust releases),
/// so an operator, CHECK and a repeated ADD can all find it.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a(&[container_id.as_bytes(), b"\0", ifname.as_bytes()]);
    // 13 hex digits: 52 bits, enough that hundreds of pods on a node never collide.
    format!("{HOST_VETH_PREFIX}{:013x}", hash >> 12)
}

/// 64-bit FNV-1a over the parts in turn: a hash that is the same on every run, every
/// build and every Rust release (std's hasher promises none of that), for names and
/// starting points that must not change under running pods.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_ifnamsiz_and_is_stable() {
        let name = host_veth_name("abc", "eth0");
        assert_eq!(name.len(), MAX_IFNAME_LEN);
        assert_eq!(name, host_veth_name("abc", "eth0"));
        assert_ne!(name, host_veth_name("abc", "eth1"));
        // the separator keeps ("ab","ceth0") apart from ("abc","eth0")
        assert_ne!(name, host_veth_name("ab", "ceth0"));
        // pinned: a change here would orphan the links of running pods after an upgrade
        assert_eq!(host_veth_name("", ""), "wvaf63bd4c8601b");
    }
}
