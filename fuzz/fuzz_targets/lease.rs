//! A lease as it comes out of the store (etcd or sqlite): JSON any store writer may have
//! written. The agent parses it, then decides whether to believe it (weft_core::trust)
//! before planning routes from it. Accepted leases read back the same from what weft
//! writes of them; the trust check answers for every one, in words.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_core::lease::Lease;
use weft_core::network::{Backend, NetworkConfig};

fuzz_target!(|data: &[u8]| {
    // etcd's values are read with from_slice, sqlite's with from_str: the same parser.
    let Ok(lease) = serde_json::from_slice::<Lease>(data) else { return };
    let text = serde_json::to_string(&lease).expect("a lease serialises");
    let again: Lease = serde_json::from_str(&text).expect("a lease's own JSON reads back");
    assert_eq!(again, lease, "the lease changes across a write and a read");
    for (cidr, backend) in [("10.244.0.0/16", Backend::Vxlan), ("fd00:244::/48", Backend::Auto)] {
        let mut config = NetworkConfig::new(cidr.parse().unwrap());
        config.backend = backend;
        if let Err(distrust) = weft_core::trust::check(&lease, &config) {
            assert!(!distrust.to_string().is_empty());
        }
    }
    let dual = NetworkConfig::with_cidrs(&["10.244.0.0/16".parse().unwrap(), "fd00:244::/48".parse().unwrap()])
        .expect("a dual network");
    if let Err(distrust) = weft_core::trust::check(&lease, &dual) {
        assert!(!distrust.to_string().is_empty());
    }
});
