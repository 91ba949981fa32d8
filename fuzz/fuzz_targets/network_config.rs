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
    assert!(config.subnet_count() >= 2, "a valid config holds at least two node subnets");
    let first = pick_subnet(&config, &HashSet::new(), "n1", None);
    if let Some(subnet) = first {
        assert!(config.cidr.contains(&subnet) && subnet.prefix_len() == config.subnet_len);
        assert!(!config.is_reserved(&subnet));
        let taken: HashSet<_> = [subnet].into();
        if let Some(second) = pick_subnet(&config, &taken, "n2", None) {
            assert_ne!(second, subnet, "two nodes got the same subnet");
        }
        let lease = Lease {
            node: "n1".into(),
            subnet,
            public_ip: "192.0.2.11".parse().unwrap(),
            backend: config.backend,
            vtep_mac: Some(weft_core::lease::vtep_mac("n1")),
        };
        let _ = weft_core::trust::check(&lease, &config);
    }
});
