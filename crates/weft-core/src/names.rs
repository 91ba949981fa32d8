//! Names for the links weft creates. Interface names are limited to 15 bytes.

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Prefix of every host-side veth weft creates.
pub const HOST_VETH_PREFIX: &str = "wv";

/// The node-side name of a pod's veth: the same for the same attachment on every run and
/// every build (FNV-1a, not std's hasher, whose output may change between Rust releases),
/// so an operator, CHECK and a repeated ADD can all find it.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container_id.bytes().chain([0]).chain(ifname.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // 13 hex digits: 52 bits, enough that hundreds of pods on a node never collide.
    format!("{HOST_VETH_PREFIX}{:013x}", hash >> 12)
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
