//! The cluster's network config as it comes out of the store (`weft network init` writes
//! it; any store writer can). The agent parses it, validates it, then leases a subnet from
//! it: a config that validates must not make that arithmetic panic. Accepted configs read
//! back the same from what weft writes of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use weft_core::lease::{pick_subnet, Lease};
use weft_core::network::NetworkConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<NetworkConfig>(data) else { return };
    let text = serde_json::to_string(&config).expect("a network config serialises");
    let again: NetworkConfig = serde_json::from_str(&text).expect("a config's own JSON reads back");
    assert_eq!(again, config, "the config changes across a write and a read");
    if config.validate().is_err() {
        return;
    }
    // Each family's pool on its own, as the agent leases from it.
    let mut subnets = Vec::new();
    for family in config.families() {
        let pool = config.for_family(family).expect("a family the config names");
        assert!(pool.subnet_count() >= 2, "a valid config holds at least two node subnets");
        let Some(subnet) = pick_subnet(&pool, &HashSet::new(), "n1", None) else { return };
        assert!(pool.cidr.contains(&subnet) && subnet.prefix_len() == pool.subnet_len);
        assert!(!pool.is_reserved(&subnet));
        let taken: HashSet<_> = [subnet].into();
        if let Some(second) = pick_subnet(&pool, &taken, "n2", None) {
            assert_ne!(second, subnet, "two nodes got the same subnet");
        }
        subnets.push(subnet);
    }
    let lease = Lease {
        node: "n1".into(),
        subnet: subnets[0],
        public_ip: "192.0.2.11".parse().unwrap(),
        backend: config.backend,
        vtep_mac: Some(weft_core::lease::vtep_mac("n1")),
        subnet6: subnets.get(1).copied(),
        other_public_ip: Some("2001:db8::11".parse().unwrap()),
    };
    let _ = weft_core::trust::check(&lease, &config);
});
