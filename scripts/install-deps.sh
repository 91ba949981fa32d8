#!/usr/bin/env bash
# Installs the Debian packages weft's tests and benchmarks use, if they are missing.
set -euo pipefail

packages=(
  iproute2                      # `ip`, for test fixtures and `ip netns exec`
  iputils-ping                  # connectivity checks
  iptables                      # the reference portmap plugin programs iptables
  containernetworking-plugins   # the reference CNI plugins: bridge, host-local, portmap
  etcd-server                   # a real etcd for the etcd store's tests
  nftables                      # the agent masquerades with `nft`
  iperf3                        # the dataplane benchmark
  openssl                       # certificates for the etcd TLS test
  procps                        # sysctl, for the dataplane benchmark's hand-built twin
  bird2                         # BIRD, the lab router's BGP (bgp mode, gateways)
  frr                           # FRR, the other BGP router the lab and tests peer with
  chromium                      # headless, the picture tests open weft lab show's pages in it
  protobuf-compiler             # protoc: etcd-client compiles etcd's gRPC protos at build time
  libprotobuf-dev               # the well-known types (google/protobuf/*.proto) those protos import; only recommended by protobuf-compiler
  containerd                    # the CRI test: a real containerd (CRI plugin built in) plays the runtime
  runc                          # containerd's OCI runtime, which starts the pods' pause containers
  gcc                           # the CRI test builds its pause image's static binary (and rustc links with it)
  libc6-dev                     # libc.a, for that static binary
  python3-venv                  # the manifests' validator (kubernetes-validate) lives in a venv
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The manifests' schema check (crates/weft/tests/deploy.rs): kubernetes-validate from PyPI,
# pinned, with the Kubernetes API schemas it ships (offline), in a venv of its own.
KUBERNETES_VALIDATE_VERSION=1.37.0
venv=/opt/weft-tests/venv
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qF "$KUBERNETES_VALIDATE_VERSION"; then
  echo "installing: kubernetes-validate $KUBERNETES_VALIDATE_VERSION (in $venv)"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# cargo-fuzz, for the brief fuzz run of scripts/test.sh (scripts/fuzz.sh): pinned, built
# from crates.io with its lock file (about a minute on two cores, once per machine). When
# it cannot be had, the fuzz step says so and is skipped; nothing else depends on it.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "installing: cargo-fuzz $CARGO_FUZZ_VERSION (cargo install, about a minute)"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
    || echo "install-deps: cargo-fuzz did not install: scripts/test.sh will skip the fuzz targets" >&2
fi
